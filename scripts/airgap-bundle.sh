#!/usr/bin/env bash
# Packs everything a disconnected site needs into one tarball:
#   images/       the nodesage image (docker save, or skopeo copy when present)
#                 and model images (--model-images)
#   models/       the chosen GGUF files with their .sha256 sidecars
#   model-images/ build contexts of the model images (Dockerfile FROM scratch)
#   manifests/    the daemonset/ kustomize tree and rendered.yaml (overlays/airgap)
#   install.sh    for the disconnected side (scripts/airgap-install.sh)
#   SHA256SUMS    of every file above; bundle.json says what is inside, and
#                 models/MODELS lists "<id> <file> <NODESAGE_MODEL value>" per model
#
#   scripts/airgap-bundle.sh --out FILE.tar [--model ID|FILE]... [--models-dir DIR]
#                            [--image IMAGE] [--model-images] [--no-images]
#
# --model       a catalog id (its file in --models-dir, default
#               /var/lib/nodesage/models, e.g. after `nodesage model pull`)
#               or a GGUF path; repeatable. Its .sha256 sidecar (or the
#               catalog's pinned digest) must match, else the bundle is refused.
# --image       the daemon image (default nodesage/nodesage:<package version>).
# --model-images  also build and save one model image per model (needs docker).
# --no-images   leave every image out (docker and skopeo not needed): the site
#               mirrors the images another way.
set -euo pipefail

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

here="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' "$here/package.json")"
out="" image="nodesage/nodesage:$version" models_dir="/var/lib/nodesage/models" images=1 model_images=0
models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --model) models+=("$2"); shift 2 ;;
    --models-dir) models_dir="$2"; shift 2 ;;
    --image) image="$2"; shift 2 ;;
    --model-images) model_images=1; shift ;;
    --no-images) images=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "airgap-bundle: unknown argument $1" >&2; usage ;;
  esac
done
if [ -z "$out" ]; then usage; fi
if [ "$images" = 0 ] && [ "$model_images" = 1 ]; then
  echo "airgap-bundle: --model-images needs images (drop --no-images)" >&2
  exit 2
fi

name="nodesage-airgap-$version"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/$name"
mkdir -p "$root/images" "$root/models" "$root/manifests"

# The catalog entry of an id, as "file sha256" (sha256 empty when not pinned).
catalog_entry() {
  node -e 'const c=require(process.argv[1]);const m=c.models.find((x)=>x.id===process.argv[2]);if(!m)process.exit(1);process.stdout.write(m.file+" "+(m.sha256||""))' \
    "$here/models/catalog.json" "$1"
}

model_ids=()
for m in "${models[@]+"${models[@]}"}"; do
  pinned=""
  if [ -f "$m" ]; then
    src="$m"
    id="$(basename "$m" .gguf | tr '[:upper:]' '[:lower:]')"
    # Not a catalog id: the daemon gets the path under llm.modelsDir.
    value="/var/lib/nodesage/models/$(basename "$m")"
  elif entry="$(catalog_entry "$m")"; then
    src="$models_dir/${entry%% *}"
    pinned="${entry#* }"
    id="$m"
    value="$m"
    [ -f "$src" ] || { echo "airgap-bundle: $m is not staged in $models_dir (run: nodesage model pull $m)" >&2; exit 1; }
  else
    echo "airgap-bundle: $m is neither a file nor a catalog id" >&2
    exit 2
  fi
  file="$(basename "$src")"
  actual="$(sha256sum "$src" | cut -d' ' -f1)"
  expected="$pinned"
  if [ -z "$expected" ] && [ -f "$src.sha256" ]; then expected="$(cut -d' ' -f1 "$src.sha256")"; fi
  if [ -n "$expected" ] && [ "$expected" != "$actual" ]; then
    echo "airgap-bundle: sha256 mismatch for $src: expected $expected, got $actual" >&2
    exit 1
  fi
  [ -n "$expected" ] || echo "airgap-bundle: $file has no recorded digest; bundling its current one $actual" >&2
  ln -f "$src" "$root/models/$file" 2>/dev/null || cp -f "$src" "$root/models/$file"
  printf '%s  %s\n' "$actual" "$file" > "$root/models/$file.sha256"
  "$here/scripts/build-model-image.sh" --model "$root/models/$file" --id "$id" --out "$root/model-images/$id" >/dev/null
  model_ids+=("$id")
  printf '%s %s %s\n' "$id" "$file" "$value" >> "$root/models/MODELS"
done

save_image() { # image, output tar
  if command -v skopeo >/dev/null 2>&1; then
    skopeo copy "docker-daemon:$1" "docker-archive:$2:$1" >/dev/null 2>&1 || skopeo copy "docker://$1" "docker-archive:$2:$1"
  elif command -v docker >/dev/null 2>&1; then
    docker save -o "$2" "$1"
  else
    echo "airgap-bundle: neither skopeo nor docker is installed; use --no-images to leave the images out" >&2
    exit 1
  fi
}
if [ "$images" = 1 ]; then
  save_image "$image" "$root/images/nodesage.tar"
  if [ "$model_images" = 1 ]; then
    for id in "${model_ids[@]+"${model_ids[@]}"}"; do
      docker build -q -t "nodesage/model:$id" "$root/model-images/$id" >/dev/null
      save_image "nodesage/model:$id" "$root/images/model-$id.tar"
    done
  fi
fi

cp -R "$here/daemonset" "$root/manifests/daemonset"
if command -v kubectl >/dev/null 2>&1; then
  kubectl kustomize "$root/manifests/daemonset/overlays/airgap" > "$root/manifests/rendered.yaml"
else
  echo "airgap-bundle: kubectl not found; manifests/rendered.yaml left out (install.sh renders on the site)" >&2
fi
cp "$here/scripts/airgap-install.sh" "$root/install.sh"
chmod +x "$root/install.sh"

{
  printf '{\n  "version": "%s",\n  "image": "%s",\n  "imagesIncluded": %s,\n  "models": [' "$version" "$image" "$([ "$images" = 1 ] && echo true || echo false)"
  sep=""
  for id in "${model_ids[@]+"${model_ids[@]}"}"; do printf '%s"%s"' "$sep" "$id"; sep=", "; done
  printf '],\n  "createdAt": "%s"\n}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$root/bundle.json"

(cd "$root" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' sha256sum > "$work/SHA256SUMS" && mv "$work/SHA256SUMS" SHA256SUMS)
mkdir -p "$(dirname "$out")"
# GGUF weights do not compress: a plain tar, hard links stored once.
tar -C "$work" -cf "$out" "$name"
echo "$out: $(du -h "$out" | cut -f1) — $name with ${#model_ids[@]} model(s), images $([ "$images" = 1 ] && echo included || echo left out)"
