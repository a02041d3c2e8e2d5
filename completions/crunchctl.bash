
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
