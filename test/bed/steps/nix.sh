# Debian's Nix tools, so the suite can parse the NixOS module (nix/). nixpkgs itself is not to be had
# here, so the module's evaluation tests run only where `<nixpkgs>` is on NIX_PATH.

step_nix() {
  if ! command -v nix-instantiate >/dev/null; then
    log "installing Debian nix-bin"
    # Without its recommended nix-setup-systemd: the checks evaluate as root without a daemon.
    apt-get update -q >>"$BED_LOGS/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nix-bin >>"$BED_LOGS/apt.log" 2>&1
  fi
  log "$(nix-instantiate --version)"
}
