"""Regenerate completions/crunchctl.{bash,zsh,fish} from the installed Typer app.

Run after changing commands or options: ``python completions/generate.py``. A test fails
when the committed scripts differ from what this prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHELLS = ("bash", "zsh", "fish")
HERE = Path(__file__).resolve().parent


#: Bash splits words at the characters of COMP_WORDBREAKS, ':' among them, so
#: ``--source watch:/data/rsa`` reaches a completion function as three words. This
#: function joins such pieces again before asking crunchctl, and hands back only the part
#: of each answer after the word's last ':' (what bash replaces), as bash-completion's
#: __ltrim_colon_completions does. Answers that do not start with the word are dropped.
BASH = r"""
_crunchctl_completion() {
    local IFS=$'\n'
    local line=$COMP_LINE words=() cword=0 i=0 j=-1 w lead
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        lead=${line%%[![:space:]]*}
        line=${line#"$lead"}
        if ((j >= 0)) && [[ -z $lead ]] && [[ $w == :* || ${words[j]} == *: ]]; then
            words[j]+=$w
        else
            j=$((j + 1))
            words[j]=$w
        fi
        line=${line#"$w"}
        ((i == COMP_CWORD)) && cword=$j
    done
    local cur=${words[cword]}
    local reply
    reply=( $( env COMP_WORDS="${words[*]}" \
                   COMP_CWORD=$cword \
                   _CRUNCHCTL_COMPLETE=complete_bash $1 ) )
    COMPREPLY=()
    local prefix=""
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        prefix=${cur%"${cur##*:}"}
    fi
    for w in "${reply[@]}"; do
        [[ $w == "$cur"* ]] || continue
        COMPREPLY+=("${w#"$prefix"}")
    done
    return 0
}

complete -o default -F _crunchctl_completion crunchctl
"""


def script(shell: str) -> str:
    """The completion script for ``shell``: Typer's (its ``source_<shell>`` mode), except
    for bash, whose script is :data:`BASH` (values with a ':' complete)."""
    if shell == "bash":
        return BASH
    env = {**os.environ, "_CRUNCHCTL_COMPLETE": f"source_{shell}"}
    code = "import sys; sys.argv[0] = 'crunchctl'; from crunchctl.cli import main; main()"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout


def main() -> None:
    for shell in SHELLS:
        target = HERE / f"crunchctl.{shell}"
        target.write_text(script(shell))
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
