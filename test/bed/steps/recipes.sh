# Fixture recipes as local git repositories with annotated version tags, generated from
# test/fixtures/recipes/<recipe>/{base,release,versions}. Regenerated whenever those files change.

BED_RECIPES="$BED_CACHE/recipes"

# Fills @NAME@ placeholders in every file of a version's tree; a later NAME=value overrides an
# earlier one, so a version's own values override the defaults.
fill_placeholders() {
  local tree=$1; shift
  find "$tree" -path "$tree/.git" -prune -o -type f -print0 | xargs -0 perl -0pi -e '
    BEGIN { %v = map { /^([^=]+)=(.*)$/s ? ($1, $2) : () } split /\x1f/, $ENV{BED_PLACEHOLDERS} }
    s/@([A-Z_]+)@/exists $v{$1} ? $v{$1} : "\@$1\@"/ge' -- 
}

build_recipe_repo() {
  local recipe=$1 source="$BED_REPO/test/fixtures/recipes/$1" target=$2
  local -a defaults=() released=()
  local version fields
  rm -rf "$target"; mkdir -p "$target"
  git -C "$target" init -q -b main
  while read -r -a fields; do
    [[ ${#fields[@]} -eq 0 || ${fields[0]} == \#* ]] && continue
    if [[ ${fields[0]} == defaults ]]; then defaults=("${fields[@]:1}"); continue; fi
    version=${fields[0]}
    released+=("$version")
    git -C "$target" rm -rq --ignore-unmatch . >/dev/null
    cp -a "$source/base/." "$target/"
    mkdir -p "$target/release"
    local note
    for note in "${released[@]}"; do cp "$source/release/$note" "$target/release/$note"; done
    BED_PLACEHOLDERS=$(IFS=$'\x1f'; echo "${defaults[*]}"$'\x1f'"${fields[*]:1}"$'\x1f'"VERSION=$version"$'\x1f'"UPSTREAM=${version#*+}") \
      fill_placeholders "$target"
    git -C "$target" add -A
    git -C "$target" -c user.name=warmstack-bed -c user.email=bed@warm.test commit -qm "$recipe $version"
    git -C "$target" -c user.name=warmstack-bed -c user.email=bed@warm.test tag -a "$version" -m "Release $version"
  done <"$source/versions"
}

step_recipes() {
  local hash stamp="$BED_RECIPES/.source-hash"
  hash=$(source_hash test/fixtures/recipes test/bed/steps/recipes.sh)
  if [[ "$(cat "$stamp" 2>/dev/null)" == "$hash" ]]; then log "fixture recipes up to date"; return 0; fi
  local staging="$BED_CACHE/recipes.partial" recipe
  rm -rf "$staging"; mkdir -p "$staging"
  for recipe in "$BED_REPO"/test/fixtures/recipes/*/; do
    recipe=$(basename "$recipe")
    build_recipe_repo "$recipe" "$staging/$recipe"
    log "recipe $recipe: $(git -C "$staging/$recipe" tag | wc -l) versions"
  done
  echo "$hash" >"$staging/.source-hash"
  rm -rf "$BED_RECIPES"; mv "$staging" "$BED_RECIPES"
}
