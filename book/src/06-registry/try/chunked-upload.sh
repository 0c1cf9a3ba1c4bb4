#!/bin/sh
# "An upload session, chunk by chunk": 2500 bytes in chunks of 1000, with
# one chunk out of order on the way.
. "$(dirname "$0")/lib.sh"
pattern 2500 1 > "$work/blob"
D=$(digest "$work/blob")
head -c 1000 "$work/blob" > "$work/part1"
head -c 2000 "$work/blob" | tail -c 1000 > "$work/part2"
tail -c 500 "$work/blob" > "$work/part3"

note "Is this a registry, and may I use it?"
ask 200 "$R/v2/"

note "Open an upload session."
ask 202 -X POST "$R/v2/class/app/blobs/uploads/"
location=$R$(header location)

note "The first 1000 bytes (Content-Range is inclusive)."
ask 202 -X PATCH -H "$OCTETS" -H 'Content-Range: 0-999' --data-binary @"$work/part1" "$location"

note "A chunk that skips bytes 1000-1999 is refused, and the answer says where we are."
ask 416 -X PATCH -H "$OCTETS" -H 'Content-Range: 2000-2499' --data-binary @"$work/part3" "$location"

note "Where was I? (What a client asks after a broken connection.)"
ask 204 "$location"

note "The next chunk in order."
ask 202 -X PATCH -H "$OCTETS" -H 'Content-Range: 1000-1999' --data-binary @"$work/part2" "$location"

note "Close the session with the digest of the whole blob, and the last chunk."
ask 201 -X PUT -H "$OCTETS" -H 'Content-Range: 2000-2499' --data-binary @"$work/part3" "$location?digest=$D"

note "The blob is there, under its digest; the session is gone."
ask 200 -I "$R/v2/class/app/blobs/$D"
ask 404 "$location"
