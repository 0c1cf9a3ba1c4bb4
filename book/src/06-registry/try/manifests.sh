#!/bin/sh
# "Putting a manifest": refused while a blob it names is missing, then
# stored under a tag, then read back by tag and by digest.
. "$(dirname "$0")/lib.sh"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$work/config"
pattern 1000 2 > "$work/layer"
manifest "$work/config" "$work/layer" > "$work/manifest"
M=$(digest "$work/manifest")
push "$work/config" class/app

note "The config is in, the layer is not: the manifest is refused."
ask 400 -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary @"$work/manifest" "$R/v2/class/app/manifests/1.0"

push "$work/layer" class/app
note "(The layer is pushed.) Now the manifest goes in, under tag 1.0."
ask 201 -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary @"$work/manifest" "$R/v2/class/app/manifests/1.0"

note "Pulled by tag: the same bytes, their type, their digest."
ask 200 -H "Accept: $OCI_MANIFEST" "$R/v2/class/app/manifests/1.0"

note "Asked by digest, HEAD says whether it exists and how big it is."
ask 200 -I "$R/v2/class/app/manifests/$M"

note "A tag that does not exist."
ask 404 "$R/v2/class/app/manifests/2.0"

note "A name that cannot be a repository."
ask 400 "$R/v2/Class/App/manifests/1.0"
