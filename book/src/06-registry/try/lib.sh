# What the scripts in this directory share. Each replays one conversation of
# the book's Part 6 with curl, against the registry at $REGISTRY (default
# 127.0.0.1:5000): start one first, from the repository's top directory,
#     target/debug/ch06-registry serve --root /tmp/berth-reg6
# and, for a fresh start, stop it, remove /tmp/berth-reg6 and start it again.
set -eu
R=http://${REGISTRY:-127.0.0.1:5000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# note WORDS: what the next request is for.
note() { printf '\n# %s\n' "$*"; }

# ask STATUS CURL-ARGS...: send one request, print the answer's status line,
# headers and body, and stop unless the status is STATUS. The answer's
# headers are kept in $work/headers for `header NAME`.
ask() {
    want=$1
    shift
    method=GET prev= url=
    for arg; do
        case $prev in -X) method=$arg ;; esac
        [ "$arg" = -I ] && method=HEAD
        prev=$arg url=$arg
    done
    printf '> %s %s\n' "$method" "${url#"$R"}"
    prev=
    for arg; do
        case $prev in
            -H) printf '>   %s\n' "$arg" ;;
            --data-binary) printf '>   | [%s bytes]\n' "$(wc -c < "${arg#@}" | tr -d ' ')" ;;
        esac
        prev=$arg
    done
    curl -sS -D "$work/headers" -o "$work/body" "$@"
    tr -d '\r' < "$work/headers" | grep -v -i -e '^date:' -e '^$' | sed 's/^/< /'
    # With -I curl writes the headers to -o's file too: a HEAD has no body.
    if [ "$method" != HEAD ] && [ -s "$work/body" ]; then sed 's/^/<   | /' "$work/body"; echo; fi
    got=$(head -n 1 "$work/headers" | cut -d' ' -f2)
    if [ "$got" != "$want" ]; then
        echo "expected $want, got $got" >&2
        exit 1
    fi
}

# header NAME: a header of the last answer.
header() { tr -d '\r' < "$work/headers" | sed -n "s/^$1: //Ip" | head -n 1; }

# pattern N SEED: the N bytes the tests use as blob content.
pattern() {
    python3 -c 'import sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
sys.stdout.buffer.write(bytes(((i * 2654435761) % 2**32 >> 24) ^ seed for i in range(n)))' "$1" "$2"
}

# digest FILE: sha256:HEX of the file's bytes.
digest() { echo "sha256:$(sha256sum < "$1" | cut -d' ' -f1)"; }

# manifest CONFIG LAYER...: an OCI image manifest naming them, laid out as
# the tests lay it out (serde_json's pretty form, keys sorted).
manifest() {
    python3 - "$@" <<'PY'
import hashlib, json, sys
def desc(media, path):
    data = open(path, 'rb').read()
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "mediaType": media, "size": len(data)}
m = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": desc("application/vnd.oci.image.config.v1+json", sys.argv[1]),
    "layers": [desc("application/vnd.oci.image.layer.v1.tar", p) for p in sys.argv[2:]],
}
sys.stdout.write(json.dumps(m, indent=2, sort_keys=True))
PY
}

OCTETS='Content-Type: application/octet-stream'
OCI_MANIFEST='application/vnd.oci.image.manifest.v1+json'

# push BLOB-FILE REPO: one blob, in one POST, quietly.
push() {
    curl -sS -f -o /dev/null -X POST -H "$OCTETS" --data-binary @"$1" \
        "$R/v2/$2/blobs/uploads/?digest=$(digest "$1")"
}

# small_image REPO TAG SEED: the tests' small image (a config, one layer of
# 10,000 bytes, the manifest under TAG); the manifest is left in $work/image.
small_image() {
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":%s}' "$3" > "$work/image-config"
    pattern 10000 "$3" > "$work/image-layer"
    push "$work/image-config" "$1"
    push "$work/image-layer" "$1"
    manifest "$work/image-config" "$work/image-layer" > "$work/image"
    curl -sS -f -o /dev/null -X PUT -H "Content-Type: $OCI_MANIFEST" \
        --data-binary @"$work/image" "$R/v2/$1/manifests/$2"
}
