
#compdef crunchctl

_crunchctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _CRUNCHCTL_COMPLETE=complete_zsh crunchctl)
}

compdef _crunchctl_completion crunchctl

