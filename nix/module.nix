# services.warmstack: the nightly sweep on a timer and the forge bridge as a service (docs/nixos.md).
#   imports = [ /path/to/warmstack/nix/module.nix ];
# From pkgs it takes only the package option's default, so it evaluates against nothing but nixpkgs'
# lib and the NixOS options it sets (nix/tests/eval.nix does exactly that).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf mkOption types;

  cfg = config.services.warmstack;

  # A secret's path is a string that stays out of the store: a Nix path literal would be copied into
  # the world-readable store, so the type refuses it, as it refuses a relative path.
  secretPath = types.pathWith {
    inStore = false;
    absolute = true;
  };

  # Each secret reaches a unit as a systemd credential: systemd (as root) copies the file into the
  # unit's own credentials directory, and the runner reads `%d/<credential>`. Neither the value nor
  # the original path is ever in the unit's environment.
  secretSpecs = {
    passphraseFile = {
      credential = "passphrase";
      variable = "PULUMI_CONFIG_PASSPHRASE_FILE";
      units = [ "nightly" "bridge" ];
      what = "The Pulumi state passphrase. When null, the runner generates one in the state directory on first use (back it up: without it the state cannot be read).";
    };
    keycloakAdminPasswordFile = {
      credential = "keycloak-admin-password";
      variable = "WARMSTACK_KEYCLOAK_ADMIN_PASSWORD_FILE";
      units = [ "nightly" "bridge" ];
      what = "The admin password of a shared Keycloak that warmstack did not deploy itself. Not needed for the warm Keycloak warmstack runs.";
    };
    alertWebhookUrlFile = {
      credential = "alert-webhook-url";
      variable = "WARMSTACK_ALERT_WEBHOOK_URL_FILE";
      units = [ "nightly" "bridge" ];
      what = "The alert webhook URL (it may carry a token). When null, alerts are only written as records in the state directory.";
    };
    forgeTokenFile = {
      credential = "forge-token";
      variable = "WARMSTACK_FORGE_TOKEN_FILE";
      units = [ "bridge" ];
      what = "The forge API token the bridge reports run results with. Required by the bridge.";
    };
    postgresPassFile = {
      credential = "pgpass";
      variable = "PGPASSFILE";
      units = [ "nightly" "bridge" ];
      what = "A libpq password file (`host:port:database:user:password` lines) for the PostgreSQL of {option}`services.warmstack.coordinationUrl` and of a `postgres://` {option}`services.warmstack.pulumiBackendUrl`, whose URLs then carry no password.";
    };
    webhookSecretFile = {
      credential = "webhook-secret";
      variable = "WARMSTACK_WEBHOOK_SECRET_FILE";
      units = [ "bridge" ];
      what = "The secret the forge signs its webhooks with. Required by the bridge: it never acts on an unsigned request.";
    };
  };

  # Every secret's value is looked at first, so a bad path fails the evaluation even while the unit
  # that would read it is off.
  credentialsOf =
    unit:
    lib.filterAttrs (
      name: spec: cfg.secrets.${name} != null && lib.elem unit spec.units
    ) secretSpecs;

  # systemd expands specifiers (`%x`) in Environment=, ExecStart= and LoadCredential=: a literal `%`
  # must be doubled, or a URL-encoded value would be mangled.
  escapeSpecifiers = lib.replaceStrings [ "%" ] [ "%%" ];

  # ExecStart words: plain when they need no quoting, else quoted as systemd reads them.
  execArg =
    arg:
    if builtins.match "[A-Za-z0-9_./:@+=,-]+" arg != null then
      arg
    else
      lib.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON arg);
  execLine = args: lib.concatMapStringsSep " " execArg args;

  warmstack = "${cfg.package}/bin/warmstack";

  # The variables the module sets itself; a secret given by value would land in the store.
  reservedVariables =
    {
      HOME = "services.warmstack.stateDir";
      PATH = "services.warmstack.path";
      WARMSTACK_STATE_DIR = "services.warmstack.stateDir";
      WARMSTACK_PROJECT_DIR = "services.warmstack.stateDir";
      WARMSTACK_CATALOGUE = "services.warmstack.catalogue";
      WARMSTACK_BASE_DOMAIN = "services.warmstack.baseDomain";
      PULUMI_BACKEND_URL = "services.warmstack.pulumiBackendUrl";
      WARMSTACK_COORDINATION_URL = "services.warmstack.coordinationUrl";
      WARMSTACK_HOST_ID = "services.warmstack.hostId";
      WARMSTACK_NODE_DOCKER_HOSTS = "services.warmstack.nodeDockerHosts";
      PULUMI_CONFIG_PASSPHRASE = "services.warmstack.secrets.passphraseFile";
      WARMSTACK_KEYCLOAK_ADMIN_PASSWORD = "services.warmstack.secrets.keycloakAdminPasswordFile";
    }
    // lib.mapAttrs' (
      name: spec: lib.nameValuePair spec.variable "services.warmstack.secrets.${name}"
    ) secretSpecs;
  reservedSet = lib.filter (name: cfg.environment ? ${name}) (lib.attrNames reservedVariables);

  # The runner writes each stack's config (Pulumi.<stack>.yaml) beside Pulumi.yaml, and the package
  # is read-only: the project directory lives in the state directory and links the package's build,
  # relinked on every start so an upgraded package takes effect. Renames keep both units, which may
  # start together, from seeing a half-made link.
  projectDir = "${cfg.stateDir}/project";
  projectSource = "${cfg.package}/lib/warmstack";
  prepare = ''
    ${lib.optionalString cfg.swarm.expect ''
      swarm=$(docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}') || {
        echo "warmstack: 'docker info' failed: the Docker daemon cannot be reached" >&2
        exit 1
      }
      if [ "$swarm" != "active true" ]; then
        echo "warmstack: the Docker daemon is not a swarm manager (swarm state, manager: $swarm)." >&2
        echo "warmstack deploys with 'docker stack deploy': run 'docker swarm init' once (docs/nixos.md)," >&2
        echo "or set services.warmstack.swarm.expect = false to start without this check." >&2
        exit 1
      fi
    ''}
    project=${lib.escapeShellArg projectDir}
    mkdir -p "$project"
    for file in Pulumi.yaml package.json; do
      cp --no-preserve=mode ${lib.escapeShellArg projectSource}/"$file" "$project/.$file.$$"
      mv -f "$project/.$file.$$" "$project/$file"
    done
    for dir in dist node_modules; do
      ln -sfn ${lib.escapeShellArg projectSource}/"$dir" "$project/.$dir.$$"
      mv -fT "$project/.$dir.$$" "$project/$dir"
    done
  '';

  unitFor =
    unit:
    let
      credentials = credentialsOf unit;
    in
    {
      after = [
        "docker.service"
        "network-online.target"
      ];
      wants = [
        "docker.service"
        "network-online.target"
      ];
      path = [
        cfg.package
        config.virtualisation.docker.package
      ] ++ cfg.path;
      environment =
        lib.mapAttrs (_: escapeSpecifiers) (
          {
            HOME = cfg.stateDir;
            WARMSTACK_STATE_DIR = cfg.stateDir;
            WARMSTACK_PROJECT_DIR = projectDir;
            WARMSTACK_CATALOGUE = "${cfg.catalogue}";
            WARMSTACK_BASE_DOMAIN = cfg.baseDomain;
            PULUMI_BACKEND_URL = cfg.pulumiBackendUrl;
          }
          // lib.optionalAttrs (cfg.coordinationUrl != null) { WARMSTACK_COORDINATION_URL = cfg.coordinationUrl; }
          // lib.optionalAttrs (cfg.hostId != null) { WARMSTACK_HOST_ID = cfg.hostId; }
          // lib.optionalAttrs (cfg.nodeDockerHosts != { }) {
            WARMSTACK_NODE_DOCKER_HOSTS = lib.concatStringsSep "," (lib.mapAttrsToList (node: endpoint: "${node}=${endpoint}") cfg.nodeDockerHosts);
          }
          // cfg.environment
        )
        // lib.mapAttrs' (_: spec: lib.nameValuePair spec.variable "%d/${spec.credential}") credentials;
      preStart = prepare;
      serviceConfig = {
        User = cfg.user;
        Group = cfg.group;
        StateDirectory = lib.removePrefix "/var/lib/" cfg.stateDir;
        StateDirectoryMode = "0700";
        LoadCredential = lib.mapAttrsToList (
          name: spec: "${spec.credential}:${escapeSpecifiers cfg.secrets.${name}}"
        ) credentials;
        # SIGTERM reaches the runner alone, which then tears its runs down itself (invariant 5);
        # signalling the whole group at once would stop the Pulumi engine it needs for that.
        KillMode = "mixed";
        # A run's teardown (undeploy, wait until gone, restore a snapshot) takes minutes; past this
        # the rest is killed and `warmstack reap` finds what is left.
        TimeoutStopSec = "15min";
        UMask = "0077";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectControlGroups = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
      };
    };
in
{
  options.services.warmstack = {
    enable = lib.mkEnableOption "warmstack, the warm layer of a CI for Co-op Cloud recipes";

    package = lib.mkPackageOption pkgs "warmstack" {
      extraDescription = "Build it from the warmstack repository with `pkgs.callPackage /path/to/warmstack/nix/package.nix { }` (docs/nixos.md); nixpkgs has no such package.";
    };

    user = mkOption {
      type = types.str;
      default = "warmstack";
      description = "The system user the units run as. The module creates it, in the `docker` group: that makes it root-equivalent on this host, as anything that may use the Docker socket is.";
    };

    group = mkOption {
      type = types.str;
      default = "warmstack";
      description = "The primary group of {option}`services.warmstack.user`; the module creates it.";
    };

    stateDir = mkOption {
      type = types.strMatching "/var/lib/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*";
      default = "/var/lib/warmstack";
      description = "The state directory (`WARMSTACK_STATE_DIR`, also `HOME`): run registrations, leases, locks, results, alerts, the abra directory and, by default, the Pulumi state. systemd creates it as the unit's `StateDirectory`, so it must lie under /var/lib.";
    };

    pulumiBackendUrl = mkOption {
      type = types.strMatching "[a-z0-9+]+://.+";
      default = "file://${cfg.stateDir}/pulumi";
      defaultText = lib.literalExpression ''"file://''${config.services.warmstack.stateDir}/pulumi"'';
      example = "postgres://warmstack@db.example.org/warmstack";
      description = "The Pulumi backend (`PULUMI_BACKEND_URL`). Several runners share one `postgres://` backend together with {option}`services.warmstack.coordinationUrl` (docs/scaling.md). The URL lands in the world-readable Nix store: keep passwords out of it ({option}`services.warmstack.secrets.postgresPassFile`).";
    };

    coordinationUrl = mkOption {
      type = types.nullOr (types.strMatching "postgres(ql)?://([^:/@[:space:]]+@)?[^@[:space:]]+");
      default = null;
      example = "postgres://warmstack@db.example.org/warmstack?sslmode=require";
      description = "The PostgreSQL several runners coordinate through (`WARMSTACK_COORDINATION_URL`): leases, run registrations, locks. Null: files in the state directory, for one runner. A URL with a password is refused: it would land in the Nix store.";
    };

    hostId = mkOption {
      type = types.nullOr (types.strMatching "[A-Za-z0-9][A-Za-z0-9._-]{0,62}");
      default = null;
      example = "runner-b";
      description = "The name this runner's leases, registrations and locks carry (`WARMSTACK_HOST_ID`); null: the hostname. Runners sharing a coordination database need different ones.";
    };

    nodeDockerHosts = mkOption {
      type = types.attrsOf (types.strMatching "unix:///[A-Za-z0-9._/-]+|ssh://[A-Za-z0-9._@-]+(:[0-9]{1,5})?|tcp://[A-Za-z0-9.-]+:[0-9]{1,5}");
      default = { };
      example = { "ci-node-2" = "ssh://warmstack@ci-node-2"; };
      description = "The Docker endpoint of each swarm node (by hostname) other than the manager's that holds a canonical (`WARMSTACK_NODE_DOCKER_HOSTS`): its volumes are listed and removed there.";
    };

    catalogue = mkOption {
      type = types.path;
      example = lib.literalExpression ''"''${./ci}/catalogue.yaml"'';
      description = "The recipe catalogue (`WARMSTACK_CATALOGUE`, docs/catalogue.md). Relative test programs run in its directory, so give a file inside a directory that holds them: `\"\${./ci}/catalogue.yaml\"` copies all of `ci/` into the store.";
    };

    baseDomain = mkOption {
      type = types.strMatching "([a-z0-9]([a-z0-9-]*[a-z0-9])?[.])+[a-z0-9]([a-z0-9-]*[a-z0-9])?";
      example = "ci.example.org";
      description = "The base domain (`WARMSTACK_BASE_DOMAIN`): canonicals live at `warm-<recipe>.<base>`, runs at `<recipe[:4]>-<hex6>.<base>`. The warm stack's own `warmstack:baseDomain` config, once set, wins.";
    };

    path = mkOption {
      type = types.listOf types.package;
      default = [ ];
      example = lib.literalExpression "[ pkgs.git pkgs.pulumi pkgs.bash pkgs.curl ]";
      description = "Packages on the units' PATH, before what the package wraps. The runner needs `git` and `pulumi`, and the recipes' test programs whatever they call; the Docker CLI of {option}`virtualisation.docker.package` is always there.";
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        WARMSTACK_ABRA_DIR = "/var/lib/warmstack/abra";
        WARMSTACK_KEYCLOAK_DOMAIN = "sso.ci.example.org";
      };
      description = "Further environment of both units. The values land in the world-readable Nix store: never a secret here, use {option}`services.warmstack.secrets`. The variables the module sets itself are refused.";
    };

    secrets = lib.mapAttrs (
      _: spec:
      mkOption {
        type = types.nullOr secretPath;
        default = null;
        example = "/run/keys/warmstack/${spec.credential}";
        description = "${spec.what} An absolute path to a file outside the store, which may be readable by root alone; it reaches the units as the systemd credential `${spec.credential}` (`${spec.variable}`).";
      }
    ) secretSpecs;

    swarm.expect = mkOption {
      type = types.bool;
      default = true;
      description = "Check before each start that the Docker daemon is an active swarm manager (warmstack deploys with `docker stack deploy`), and refuse to start otherwise. Evaluation cannot know: this check runs on the host.";
    };

    nightly = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Run `warmstack nightly` from a timer: `up` of the warm stack, then a cold sweep over the enrolled recipes.";
      };
      onCalendar = mkOption {
        type = types.nonEmptyStr;
        default = "03:00";
        description = "When the nightly runs (systemd `OnCalendar=`). A run missed while the host was down happens at the next boot.";
      };
      randomizedDelaySec = mkOption {
        type = types.either types.ints.unsigned types.nonEmptyStr;
        default = "30min";
        description = "A random delay of up to this much (systemd `RandomizedDelaySec=`, seconds or a time span), so servers sharing a backend do not start together.";
      };
      maxTests = mkOption {
        type = types.ints.between 0 1000;
        default = 10;
        description = "At most this many cold runs a night (`--max-tests`); the other enrolled recipes wait for a later night.";
      };
    };

    bridge = {
      enable = lib.mkEnableOption "the forge bridge (`warmstack serve`), which starts runs from the forge's webhooks";
      listen = mkOption {
        type = types.strMatching "[^[:space:]]+:[0-9]+";
        default = "127.0.0.1:47090";
        description = "Where the bridge listens (`--listen HOST:PORT`). Put a TLS reverse proxy in front of it for the forge.";
      };
      forgeUrl = mkOption {
        type = types.strMatching "https?://[^[:space:]]+";
        example = "https://git.coopcloud.tech";
        description = "The forge the bridge answers (`--forge-url`).";
      };
      maxConcurrent = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "At most this many runs at once (`--max-concurrent`); null keeps the bridge's own default.";
      };
    };
  };

  config = mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = config.virtualisation.docker.enable;
            message = "services.warmstack needs Docker: set virtualisation.docker.enable = true. warmstack deploys with `docker stack deploy`, so the daemon must also be a swarm manager (`docker swarm init`, docs/nixos.md).";
          }
          {
            assertion = reservedSet == [ ];
            message = lib.concatMapStringsSep "\n" (
              name: "services.warmstack.environment.${name} is refused: use ${reservedVariables.${name}} (the module owns ${name}, and these values land in the world-readable store)."
            ) reservedSet;
          }
        ];

        warnings = lib.optional (!cfg.swarm.expect) "services.warmstack.swarm.expect is false: the units start without checking that Docker is a swarm manager, and every deploy fails if it is not.";

        users.users.${cfg.user} = {
          isSystemUser = true;
          group = cfg.group;
          extraGroups = [ "docker" ];
          home = cfg.stateDir;
          description = "warmstack CI runner";
        };
        users.groups.${cfg.group} = { };
      }

      (mkIf cfg.nightly.enable {
        systemd.services.warmstack-nightly = lib.recursiveUpdate (unitFor "nightly") {
          description = "warmstack nightly: warm stack up, then a cold sweep of the enrolled recipes";
          # A rebuild must not stop a sweep halfway: the new unit takes over at the next timer.
          restartIfChanged = false;
          serviceConfig = {
            Type = "oneshot";
            ExecStart = execLine [
              warmstack
              "nightly"
              "--max-tests"
              (toString cfg.nightly.maxTests)
            ];
          };
        };
        systemd.timers.warmstack-nightly = {
          description = "warmstack nightly";
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnCalendar = cfg.nightly.onCalendar;
            Persistent = true;
            RandomizedDelaySec = toString cfg.nightly.randomizedDelaySec;
          };
        };
      })

      (mkIf cfg.bridge.enable {
        assertions = map (name: {
          assertion = cfg.secrets.${name} != null;
          message = "services.warmstack.bridge.enable needs services.warmstack.secrets.${name}: ${secretSpecs.${name}.what}";
        }) [ "forgeTokenFile" "webhookSecretFile" ];

        systemd.services.warmstack-bridge = lib.recursiveUpdate (unitFor "bridge") {
          description = "warmstack forge bridge: runs started by the forge's webhooks";
          wantedBy = [ "multi-user.target" ];
          serviceConfig = {
            Type = "simple";
            ExecStart = execLine (
              [
                warmstack
                "serve"
                "--listen"
                cfg.bridge.listen
                "--forge-url"
                cfg.bridge.forgeUrl
              ]
              ++ lib.optionals (cfg.bridge.maxConcurrent != null) [
                "--max-concurrent"
                (toString cfg.bridge.maxConcurrent)
              ]
            );
            Restart = "on-failure";
            RestartSec = "10s";
          };
        };
      })
    ]
  );
}
