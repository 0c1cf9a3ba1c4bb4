#!/bin/sh
# "Garbage collection": two small images in class/app, then image 2 is
# deleted; `ch06-registry gc` does the rest (see the page).
. "$(dirname "$0")/lib.sh"
small_image class/app 1 5
small_image class/app 2 6

note "Image 2 is deleted: its manifest and every tag on it."
ask 202 -X DELETE "$R/v2/class/app/manifests/$(digest "$work/image")"
