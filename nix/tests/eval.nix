# Evaluates nix/module.nix with nixpkgs' module system and nothing else of NixOS: the options the
# module reads or writes elsewhere are declared here as loose stubs, and pkgs holds only a stand-in
# for the package. test/integration/nix.test.ts runs it where <nixpkgs> is on NIX_PATH:
#   nix-instantiate --eval --strict --json --store dummy:// nix/tests/eval.nix \
#     --arg settings '{ services.warmstack.enable = true; ... }'
{ settings }:
let
  lib = import <nixpkgs/lib>;
  inherit (lib) mkOption types;

  # Derivation-shaped, as types.package accepts; nothing is ever built.
  fakePackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  package = fakePackage "warmstack-0.1.0";
  docker = fakePackage "docker-28.1.1";

  loose = mkOption {
    type = types.lazyAttrsOf types.anything;
    default = { };
  };

  stubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      users.users = loose;
      users.groups = loose;
      systemd.services = loose;
      systemd.timers = loose;
      virtualisation.docker.enable = mkOption {
        type = types.bool;
        default = false;
      };
      virtualisation.docker.package = mkOption {
        type = types.package;
        default = docker;
      };
    };
    config._module.args.pkgs = {
      warmstack = package;
    };
  };

  inherit
    (lib.evalModules {
      modules = [
        stubs
        ../module.nix
        settings
      ];
    })
    config
    ;
in
{
  package = package.outPath;
  docker = docker.outPath;
  services = config.systemd.services;
  timers = config.systemd.timers;
  users = config.users.users;
  groups = config.users.groups;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;
}
