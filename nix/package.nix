# The warmstack runner built from this repository, for services.warmstack.package (docs/nixos.md):
#   pkgs.callPackage /path/to/warmstack/nix/package.nix { npmDepsHash = "sha256-…"; }
# Build it once with the default lib.fakeHash: the hash mismatch Nix reports ("got: sha256-…") is
# the real npmDepsHash of this checkout's package-lock.json. It changes whenever the lock file does.
{
  lib,
  buildNpmPackage,
  makeWrapper,
  nodejs_20,
  git,
  pulumi,
  docker-client,
  npmDepsHash ? lib.fakeHash,
}:
let
  root = ../.;
in
buildNpmPackage {
  pname = "warmstack";
  version = (lib.importJSON (root + "/package.json")).version;

  # Only what `npm run build` reads: a checkout's node_modules, dist and results stay out.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/package.json")
      (root + "/package-lock.json")
      (root + "/tsconfig.json")
      (root + "/Pulumi.yaml")
      (root + "/infra")
      (root + "/runner")
      (root + "/stacks")
      (lib.fileset.fileFilter (file: file.hasExt "ts") (root + "/test"))
      (lib.fileset.fileFilter (file: file.hasExt "ts") (root + "/bench"))
    ];
  };

  # @pulumi/pulumi 3.248.0, the version this project pins, is the newest that supports Node 20.
  nodejs = nodejs_20;
  inherit npmDepsHash;

  nativeBuildInputs = [ makeWrapper ];

  # npm's own install would pack by .gitignore, which leaves out dist/. The layout below is what
  # nix/module.nix links its project directory to: lib/warmstack holds Pulumi.yaml, package.json,
  # dist/ and node_modules/.
  installPhase = ''
    runHook preInstall

    npm prune --omit=dev --no-save
    project=$out/lib/warmstack
    mkdir -p "$project/dist" "$out/bin"
    cp -r package.json Pulumi.yaml node_modules "$project/"
    cp -r dist/infra dist/runner dist/stacks "$project/dist/"

    # The Pulumi engine starts the dynamic-provider plugin by this name from PATH; Pulumi's own
    # distribution ships it beside the CLI, a CLI built from source may not.
    makeWrapper ${lib.getExe nodejs_20} "$out/bin/pulumi-resource-pulumi-nodejs" \
      --add-flags "$project/node_modules/@pulumi/pulumi/cmd/dynamic-provider/index.js"

    # Suffixed, so the PATH the caller (or services.warmstack.path) sets wins.
    makeWrapper ${lib.getExe nodejs_20} "$out/bin/warmstack" \
      --add-flags "$project/dist/runner/cli.js" \
      --suffix PATH : "$out/bin:${
        lib.makeBinPath [
          git
          pulumi
          docker-client
        ]
      }"

    runHook postInstall
  '';

  meta = {
    description = "The warm layer of a CI for Co-op Cloud recipes";
    license = lib.licenses.agpl3Plus;
    mainProgram = "warmstack";
  };
}
