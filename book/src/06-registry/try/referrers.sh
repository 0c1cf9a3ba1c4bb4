#!/bin/sh
# "Referrers": a signature whose subject is an image, found through the
# referrers API.
. "$(dirname "$0")/lib.sh"
small_image class/app 1.0 4
I=$(digest "$work/image")
printf '{}' > "$work/empty"
push "$work/empty" class/app
python3 - "$work/empty" "$work/image" > "$work/signature" <<'PY'
import hashlib, json, sys
def desc(media, path):
    data = open(path, 'rb').read()
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "mediaType": media, "size": len(data)}
sys.stdout.write(json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "application/vnd.example.signature",
    "config": desc("application/vnd.oci.empty.v1+json", sys.argv[1]),
    "layers": [],
    "subject": desc("application/vnd.oci.image.manifest.v1+json", sys.argv[2]),
    "annotations": {"org.example.signed-by": "teacher"},
}, indent=2, sort_keys=True))
PY
S=$(digest "$work/signature")

note "A signature of image 1.0: its subject is the image's manifest."
ask 201 -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary @"$work/signature" "$R/v2/class/app/manifests/$S"

note "What refers to the image?"
ask 200 "$R/v2/class/app/referrers/$I"

note "Only SBOMs, please: none."
ask 200 "$R/v2/class/app/referrers/$I?artifactType=application/vnd.example.sbom"
