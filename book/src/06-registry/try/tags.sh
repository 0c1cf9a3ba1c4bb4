#!/bin/sh
# "Listing tags": one image under five tags, listed at once and page by page.
. "$(dirname "$0")/lib.sh"
small_image class/app 1.0 3
for tag in 1.1 2.0 latest stable; do
    curl -sS -f -o /dev/null -X PUT -H "Content-Type: $OCI_MANIFEST" \
        --data-binary @"$work/image" "$R/v2/class/app/manifests/$tag"
done

note "All the tags at once, in byte order."
ask 200 "$R/v2/class/app/tags/list"

note "Two at a time: the Link header names the next page."
next=/v2/class/app/tags/list?n=2
while [ -n "$next" ]; do
    ask 200 "$R$next"
    next=$(header link | sed -n 's/^<\([^>]*\)>.*/\1/p')
done

note "The repositories of the registry, the same way."
ask 200 "$R/v2/_catalog"
