/* photos.h - where the real photographs for the image parity tests are:
 * $CL_PHOTO_DIR, else python3-skimage's photos unpacked by scripts/deps.sh into
 * build/photos (not installed), else an installed python3-skimage. */
#ifndef CL_TEST_PHOTOS_H
#define CL_TEST_PHOTOS_H

#include <stdio.h>
#include <stdlib.h>

#define PHOTO_DIR_DEFAULT "/usr/lib/python3/dist-packages/skimage/data"
#define PHOTO_DIR_BUILD "build/photos/usr/lib/python3/dist-packages/skimage/data"

static const char *photo_dir(void)
{
    if (getenv("CL_PHOTO_DIR"))
        return getenv("CL_PHOTO_DIR");
    FILE *f = fopen(PHOTO_DIR_BUILD "/astronaut.png", "rb");
    if (f) {
        fclose(f);
        return PHOTO_DIR_BUILD;
    }
    return PHOTO_DIR_DEFAULT;
}

#endif
