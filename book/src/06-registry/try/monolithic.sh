#!/bin/sh
# "Monolithic uploads and mounts": a blob in one request, a wrong digest, and
# a mount from another repository.
. "$(dirname "$0")/lib.sh"
printf 'hello, registry\n' > "$work/blob"
printf 'hello, registrY\n' > "$work/wrong"
D=$(digest "$work/blob")

note "The whole blob in one request: POST with ?digest=."
ask 201 -X POST -H "$OCTETS" --data-binary @"$work/blob" "$R/v2/class/app/blobs/uploads/?digest=$D"

note "Bytes that do not hash to the digest named: refused, nothing stored."
ask 400 -X POST -H "$OCTETS" --data-binary @"$work/wrong" "$R/v2/class/app/blobs/uploads/?digest=$D"

note "Another repository has no link to the blob yet..."
ask 404 -I "$R/v2/team/tool/blobs/$D"

note "...so it asks to mount it from class/app: no bytes sent."
ask 201 -X POST "$R/v2/team/tool/blobs/uploads/?mount=$D&from=class/app"
ask 200 -I "$R/v2/team/tool/blobs/$D"
