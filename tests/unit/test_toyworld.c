/* test_toyworld.c - the toy world: rasteriser areas and masks, determinism
 * (golden digests), caption generation/parsing round trips, parse errors,
 * data set splits, text pools, speed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../harness.h"
#include "toyworld.h"

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001B3ull; }
    return h;
}

/* CPU seconds of this process: a rate that does not depend on other load */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One object of a given shape in the center of an S x S plain scene. */
static void one_object(struct cl_tw_scene *s, int S, int shape, int size, struct cl_tw_rng *g)
{
    struct cl_err e;
    cl_tw_scene_init(s, S);
    s->background = CL_TW_PLAIN;
    struct cl_tw_object *o = cl_tw_scene_add(s);
    o->shape = shape;
    o->size = size;
    o->position = CL_TW_CENTER;
    o->colour = CL_TW_RED;
    CHECK(cl_tw_complete(s, g, &e) == CL_OK);
}

/* Area of object 0 in pixels from its coverage mask. */
static double mask_area(const uint8_t *mask, int S)
{
    double a = 0;
    for (int i = 0; i < S * S; i++) a += mask[i] / 255.0;
    return a;
}

static void test_rng(void)
{
    struct cl_tw_rng a, b;
    cl_tw_rng_seed(&a, 42);
    cl_tw_rng_seed(&b, 42);
    int hist[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t x = cl_tw_rng_next(&a);
        CHECK(x == cl_tw_rng_next(&b));
        uint32_t v = cl_tw_rng_below(&a, 7);
        cl_tw_rng_below(&b, 7);
        CHECK(v < 7);
        hist[v]++;
    }
    for (int i = 0; i < 7; i++) CHECKF(hist[i] > 850 && hist[i] < 1150, "bin %d: %d", i, hist[i]);
    /* known first output of xoshiro256** seeded by splitmix64(0) */
    cl_tw_rng_seed(&a, 0);
    CHECKF(cl_tw_rng_next(&a) == 0x99EC5F36CB75F2B4ull, "got %016llx",
           (unsigned long long)cl_tw_rng_next(&a));
}

static void test_areas(void)
{
    /* coverage-weighted area against the exact area of each outline */
    struct cl_tw_rng g;
    cl_tw_rng_seed(&g, 1);
    const int S = 512;
    uint8_t *rgb = malloc((size_t)S * S * 3), *mask = malloc((size_t)S * S);
    struct cl_tw_scene s;
    for (int shape = 0; shape < CL_TW_NSHAPES; shape++) {
        one_object(&s, S, shape, CL_TW_LARGE, &g);
        cl_tw_render(&s, rgb, mask);
        /* outlines are given in 1/1024 of the radius r (toyworld.c) */
        double r = s.obj[0].r / 64.0, area = mask_area(mask, S), want = 0, u = r / 1024;
        switch (shape) {
        case CL_TW_CIRCLE: want = 3.14159265358979 * r * r; break;
        case CL_TW_RING: want = 3.14159265358979 * (r * r - 560 * u * 560 * u); break;
        case CL_TW_SQUARE: want = (1660 * u) * (1660 * u); break;
        case CL_TW_TRIANGLE: want = 0.5 * (2048 * u) * (1860 * u); break;
        case CL_TW_DIAMOND: want = 2 * (870 * u) * (1000 * u); break;
        case CL_TW_CROSS: want = 2 * (660 * u) * (1940 * u) - (660 * u) * (660 * u); break;
        default: want = 0; break;
        }
        if (want > 0)
            CHECKF(fabs(area - want) / want < 0.01, "%s: area %.1f px, expected %.1f",
                   cl_tw_shape_names[shape], area, want);
        /* star and heart: plausible fraction of the box */
        double box = 4 * r * r;
        CHECKF(area > 0.25 * box && area < 0.80 * box, "%s: area %.1f of box %.1f",
               cl_tw_shape_names[shape], area, box);
    }
    /* a circle's area converges as the image grows: 64 px is within 2% */
    for (int S2 = 64; S2 <= 256; S2 *= 2) {
        one_object(&s, S2, CL_TW_CIRCLE, CL_TW_LARGE, &g);
        cl_tw_render(&s, rgb, mask);
        double r = s.obj[0].r / 64.0, want = 3.14159265358979 * r * r;
        CHECKF(fabs(mask_area(mask, S2) - want) / want < 0.02, "S=%d: %.2f vs %.2f", S2,
               mask_area(mask, S2), want);
    }
    free(rgb);
    free(mask);
}

static void test_masks(void)
{
    /* masks lie inside their object's box and cell, never overlap, show the
     * object's colour where full, and every object is clearly visible */
    struct cl_tw_config c;
    cl_tw_config_init(&c);
    c.max_objects = 9;
    c.seed = 3;
    const int S = 64;
    uint8_t rgb[64 * 64 * 3], masks[9 * 64 * 64];
    struct cl_tw_item it;
    struct cl_err e;
    int bad_box = 0, bad_overlap = 0, bad_colour = 0, small = 0;
    double min_area[CL_TW_NSIZES][CL_TW_NSHAPES];
    for (int z = 0; z < CL_TW_NSIZES; z++)
        for (int h = 0; h < CL_TW_NSHAPES; h++) min_area[z][h] = 1e9;
    for (uint64_t i = 0; i < 300; i++) {
        CHECK(cl_tw_sample_item(&c, i, &it, &e) == CL_OK);
        const struct cl_tw_scene *s = &it.scene;
        cl_tw_render(s, rgb, masks);
        for (int p = 0; p < S * S; p++) {
            int owners = 0;
            for (int k = 0; k < s->n; k++) owners += masks[k * S * S + p] != 0;
            bad_overlap += owners > 1;
        }
        for (int k = 0; k < s->n; k++) {
            const struct cl_tw_object *o = &s->obj[k];
            int box[4], full = 0;
            cl_tw_object_box(s, k, box);
            int col = o->position % 3, row = o->position / 3;
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    uint8_t m = masks[(k * S + y) * S + x];
                    if (!m) continue;
                    if (x < box[0] || x >= box[2] || y < box[1] || y >= box[3]) bad_box++;
                    /* inside its grid cell (cells are S/3 wide) */
                    if (x * 3 < col * S - 3 || x * 3 >= (col + 1) * S + 3 ||
                        y * 3 < row * S - 3 || y * 3 >= (row + 1) * S + 3) bad_box++;
                    if (m == 255) {
                        full++;
                        if (memcmp(&rgb[(y * S + x) * 3], o->rgb, 3)) bad_colour++;
                    }
                }
            /* visible: a solid area of at least 30 px (small) / 75 px (large),
             * at least half of it fully covered */
            double area = mask_area(masks + (size_t)k * S * S, S);
            if (area < (o->size == CL_TW_LARGE ? 75 : 30) || full < area / 2) {
                small++;
                fprintf(stderr, "  item %llu object %d (%s %s): area %.1f, %d full pixels\n",
                        (unsigned long long)i, k, cl_tw_size_names[o->size],
                        cl_tw_shape_names[o->shape], area, full);
            }
            min_area[o->size][o->shape] = fmin(min_area[o->size][o->shape], area);
        }
    }
    CHECKF(bad_box == 0, "%d mask pixels outside box or cell", bad_box);
    CHECKF(bad_overlap == 0, "%d pixels in two masks", bad_overlap);
    CHECKF(bad_colour == 0, "%d full-coverage pixels not the object's colour", bad_colour);
    CHECKF(small == 0, "%d objects too small", small);
    for (int z = 0; z < CL_TW_NSIZES; z++) {
        fprintf(stderr, "  smallest %s areas (px):", cl_tw_size_names[z]);
        for (int h = 0; h < CL_TW_NSHAPES; h++)
            fprintf(stderr, " %s %.0f", cl_tw_shape_names[h], min_area[z][h]);
        fprintf(stderr, "\n");
    }
}

static void test_colours_stand_out(void)
{
    /* every background instance leaves several colours; nominal colours differ */
    struct cl_tw_scene s;
    cl_tw_scene_init(&s, 64);
    for (int b = 0; b < CL_TW_NBACKGROUNDS; b++)
        for (int i = 0; i < 12; i++)
            for (int j = 6; j < 12; j++) {
                s.background = b;
                s.bg_colour[0] = b == CL_TW_PLAIN ? i : i % 6;
                s.bg_colour[1] = j;
                int ok = 0;
                for (int c = 0; c < CL_TW_NCOLOURS; c++) ok += cl_tw_colour_ok(&s, c);
                CHECKF(ok >= 5, "%s palette %d/%d: %d colours", cl_tw_background_names[b], i, j, ok);
            }
}

/* Digest of the pixels, masks and captions of items 0..n-1 of a split. */
static uint64_t digest(int split, uint64_t seed, int n, int S)
{
    struct cl_tw_config c;
    cl_tw_config_init(&c);
    c.split = split;
    c.seed = seed;
    c.size = S;
    uint8_t *rgb = malloc((size_t)S * S * 3), *masks = malloc((size_t)9 * S * S);
    struct cl_tw_item it;
    struct cl_err e;
    uint64_t h = 0xCBF29CE484222325ull;
    for (int i = 0; i < n; i++) {
        if (cl_tw_sample_item(&c, (uint64_t)i, &it, &e) != CL_OK) { h = 0; break; }
        cl_tw_render(&it.scene, rgb, masks);
        h = fnv1a(h, rgb, (size_t)S * S * 3);
        h = fnv1a(h, masks, (size_t)it.scene.n * S * S);
        h = fnv1a(h, it.caption, strlen(it.caption));
        h = fnv1a(h, it.caption_full, strlen(it.caption_full));
        int lg[2] = {it.label, it.group};
        h = fnv1a(h, lg, sizeof lg);
    }
    free(rgb);
    free(masks);
    return h;
}

static void test_determinism(void)
{
    /* same seed, same bytes; different seeds differ; item i does not depend on
     * what was sampled before it */
    for (int split = 0; split < CL_TW_NSPLITS; split++) {
        CHECK(digest(split, 5, 40, 64) == digest(split, 5, 40, 64));
        CHECK(digest(split, 5, 40, 64) != digest(split, 6, 40, 64));
    }
    struct cl_tw_config c;
    cl_tw_config_init(&c);
    struct cl_tw_item a, b;
    struct cl_err e;
    uint8_t ra[64 * 64 * 3], rb[64 * 64 * 3];
    CHECK(cl_tw_sample_item(&c, 17, &a, &e) == CL_OK);
    for (uint64_t i = 0; i < 17; i++) CHECK(cl_tw_sample_item(&c, i, &b, &e) == CL_OK);
    CHECK(cl_tw_sample_item(&c, 17, &b, &e) == CL_OK);
    cl_tw_render(&a.scene, ra, NULL);
    cl_tw_render(&b.scene, rb, NULL);
    CHECK(memcmp(ra, rb, sizeof ra) == 0);
    CHECK(!strcmp(a.caption, b.caption));
}

static void test_size_is_resolution(void)
{
    /* the same seed draws the same scene at any size: attributes, captions,
     * and centres that scale (to within the half-pixel border margin) */
    struct cl_tw_config c;
    cl_tw_config_init(&c);
    struct cl_tw_item a, b;
    struct cl_err e;
    for (uint64_t i = 0; i < 100; i++) {
        c.size = 64;
        CHECK(cl_tw_sample_item(&c, i, &a, &e) == CL_OK);
        c.size = 256;
        CHECK(cl_tw_sample_item(&c, i, &b, &e) == CL_OK);
        CHECK(!strcmp(a.caption, b.caption) && !strcmp(a.caption_full, b.caption_full));
        CHECK(a.scene.background == b.scene.background && a.scene.texture_seed == b.scene.texture_seed);
        for (int k = 0; k < a.scene.n; k++) {
            const struct cl_tw_object *p = &a.scene.obj[k], *q = &b.scene.obj[k];
            CHECKF(abs(4 * p->cx - q->cx) <= 128 && abs(4 * p->cy - q->cy) <= 128 && abs(4 * p->r - q->r) <= 8,
                   "item %llu object %d: (%d,%d,%d) x4 vs (%d,%d,%d)", (unsigned long long)i, k,
                   p->cx, p->cy, p->r, q->cx, q->cy, q->r);
        }
    }
}

static void test_golden_digest(void)
{
    /* The bytes of the world are part of its contract (data sets must be
     * reproducible on any platform): a change here means every data set and
     * the bundled model's training data changed.  Update deliberately. */
    static const uint64_t want[CL_TW_NSPLITS] = {
        0x1fe3012ab18f7456ull, 0xc4312b65d36d4e74ull, 0x8597386a056fc09dull, 0x6083112838118fefull};
    for (int split = 0; split < CL_TW_NSPLITS; split++) {
        uint64_t got = digest(split, 2024, 24, 64);
        CHECKF(got == want[split], "split %s: digest 0x%016llxull, golden 0x%016llxull",
               cl_tw_split_names[split], (unsigned long long)got, (unsigned long long)want[split]);
    }
    uint64_t big = digest(CL_TW_SPLIT_RANDOM, 1, 3, 200);
    CHECKF(big == 0xcc7962e2185f4bd0ull, "200 px digest 0x%016llxull", (unsigned long long)big);
}

static int same_spec(const struct cl_tw_scene *a, const struct cl_tw_scene *b)
{
    if (a->n != b->n || a->background != b->background) return 0;
    for (int k = 0; k < a->n; k++) {
        const struct cl_tw_object *x = &a->obj[k], *y = &b->obj[k];
        if (x->shape != y->shape || x->colour != y->colour || x->size != y->size ||
            x->position != y->position) return 0;
    }
    return 1;
}

static void test_caption_round_trip(void)
{
    struct cl_tw_config c;
    cl_tw_config_init(&c);
    c.max_objects = 3;
    struct cl_tw_item it;
    struct cl_err e;
    int bad = 0, styles_bg = 0, styles_nobg = 0;
    for (uint64_t i = 0; i < 3000 && bad < 5; i++) {
        c.split = (enum cl_tw_split)(i % CL_TW_NSPLITS);
        CHECK(cl_tw_sample_item(&c, i, &it, &e) == CL_OK);
        /* the full caption gives back every attribute */
        struct cl_tw_scene p, m;
        cl_tw_scene_init(&p, 64);
        if (cl_tw_parse(it.caption_full, &p, &e) != CL_OK || !same_spec(&p, &it.scene)) {
            bad++;
            fprintf(stderr, "  full caption '%s' did not round trip (%s)\n", it.caption_full, e.msg);
        }
        /* a varied caption gives back exactly what it mentions */
        struct cl_tw_rng g;
        char buf[CL_TW_CAPTION_MAX];
        cl_tw_rng_seed(&g, i);
        CHECK(cl_tw_caption(&it.scene, &g, &m, buf, sizeof buf) > 0);
        cl_tw_scene_init(&p, 64);
        if (cl_tw_parse(buf, &p, &e) != CL_OK || !same_spec(&p, &m)) {
            bad++;
            fprintf(stderr, "  caption '%s' did not round trip (%s)\n", buf, e.msg);
        }
        if (m.background >= 0) styles_bg++;
        else styles_nobg++;
    }
    CHECK(bad == 0);
    CHECK(styles_bg > 1800 && styles_nobg > 600);
    /* a caption too long for the buffer is refused, not cut */
    struct cl_tw_rng g;
    char tiny[20];
    cl_tw_rng_seed(&g, 1);
    CHECK(cl_tw_caption_full(&it.scene, tiny, sizeof tiny) == -1);
    CHECK(cl_tw_caption(&it.scene, &g, NULL, tiny, 5) == -1 && tiny[0] == '\0');
}

static void test_parse(void)
{
    struct cl_tw_scene s;
    struct cl_err e;
    cl_tw_scene_init(&s, 64);
    CHECK(cl_tw_parse("a large red star at the top left on a water background", &s, &e) == CL_OK);
    CHECK(s.n == 1 && s.obj[0].size == CL_TW_LARGE && s.obj[0].colour == CL_TW_RED &&
          s.obj[0].shape == CL_TW_STAR && s.obj[0].position == CL_TW_TOP_LEFT &&
          s.background == CL_TW_WATER);
    /* synonyms, case, punctuation, hyphens */
    cl_tw_scene_init(&s, 64);
    CHECK(cl_tw_parse("A Big GRAY Donut in the Lower-Right corner, and a tiny circle in the middle. On grass.",
                      &s, &e) == CL_OK);
    CHECK(s.n == 2 && s.obj[0].size == CL_TW_LARGE && s.obj[0].colour == CL_TW_GREY &&
          s.obj[0].shape == CL_TW_RING && s.obj[0].position == CL_TW_BOTTOM_RIGHT &&
          s.obj[1].size == CL_TW_SMALL && s.obj[1].shape == CL_TW_CIRCLE &&
          s.obj[1].colour == -1 && s.obj[1].position == CL_TW_CENTER && s.background == CL_TW_GRASS);
    /* every position wording the generator does not use */
    static const struct { const char *phrase; int pos; } where[] = {
        {"upper left", CL_TW_TOP_LEFT}, {"upper middle", CL_TW_TOP}, {"top centre", CL_TW_TOP},
        {"right upper", CL_TW_TOP_RIGHT}, {"centre left", CL_TW_LEFT}, {"centre", CL_TW_CENTER},
        {"middle right", CL_TW_RIGHT}, {"lower left", CL_TW_BOTTOM_LEFT},
        {"lower", CL_TW_BOTTOM}, {"bottom-right", CL_TW_BOTTOM_RIGHT}};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        char cap[64];
        snprintf(cap, sizeof cap, "a star in the %s", where[i].phrase);
        cl_tw_scene_init(&s, 64);
        CHECKF(cl_tw_parse(cap, &s, &e) == CL_OK && s.n == 1 && s.obj[0].position == where[i].pos,
               "'%s' -> %d", cap, s.obj[0].position);
    }
    /* counts and plurals; a background-only caption */
    cl_tw_scene_init(&s, 64);
    CHECK(cl_tw_parse("three yellow hearts", &s, &e) == CL_OK);
    CHECK(s.n == 3 && s.obj[2].shape == CL_TW_HEART && s.obj[2].colour == CL_TW_YELLOW &&
          s.obj[2].position == -1);
    cl_tw_scene_init(&s, 64);
    CHECK(cl_tw_parse("a checkered background", &s, &e) == CL_OK);
    CHECK(s.n == 0 && s.background == CL_TW_CHECKER);
    /* errors */
    static const struct { const char *caption, *msg; } bad[] = {
        {"a red foo", "unknown word 'foo' in caption"},
        {"a red star on a water backgroundx", "unknown word 'backgroundx' in caption"},
        {"a red star!", "unknown word 'star!' in caption"},
        {"a red blue star", "two colours ('red' and 'blue') for one object in caption"},
        {"a star circle", "two shapes ('star' and 'circle') for one object in caption"},
        {"a star on water and grass", "two backgrounds ('water' and 'grass') in caption"},
        {"two stars at the top", "2 objects cannot share one position (top) in caption"},
        {"nine stars and a circle", "too many objects in caption (at most 9)"},
        {"  ", "empty caption"},
        {"a photo of the", "caption names no object and no background"},
        {"a star at the top bottom", "two vertical positions ('top' and 'bottom')"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cl_tw_scene_init(&s, 64);
        e.msg[0] = '\0';
        enum cl_status st = cl_tw_parse(bad[i].caption, &s, &e);
        CHECKF(st == CL_ERR_DATA && strstr(e.msg, bad[i].msg), "'%s': status %d, message '%s'",
               bad[i].caption, st, e.msg);
    }
    /* non-printable bytes are shown escaped */
    cl_tw_scene_init(&s, 64);
    CHECK(cl_tw_parse("a \x01star", &s, &e) == CL_ERR_DATA && strstr(e.msg, "'\\x01star'"));
    /* specs that cannot be met */
    struct cl_tw_rng g;
    cl_tw_rng_seed(&g, 0);
    cl_tw_scene_init(&s, 64);
    CHECK(cl_tw_parse("a blue star on water", &s, &e) == CL_OK);
    CHECK(cl_tw_complete(&s, &g, &e) == CL_ERR_DATA &&
          strstr(e.msg, "a blue object would not stand out on a water background"));
    cl_tw_scene_init(&s, 64);
    CHECK(cl_tw_parse("a star at the top left and a circle in the top left corner", &s, &e) == CL_OK);
    CHECK(cl_tw_complete(&s, &g, &e) == CL_ERR_DATA && strstr(e.msg, "two objects at the top left"));
    /* a named colour steers the sampled background away from clashes */
    for (int i = 0; i < 50; i++) {
        cl_tw_scene_init(&s, 64);
        CHECK(cl_tw_parse("a white star", &s, &e) == CL_OK);
        CHECK(cl_tw_complete(&s, &g, &e) == CL_OK && cl_tw_colour_ok(&s, CL_TW_WHITE));
    }
    /* a named pattern background redraws its palette to fit the colour */
    cl_tw_scene_init(&s, 64);
    CHECK(cl_tw_parse("a black star on a plain background", &s, &e) == CL_OK);
    CHECK(cl_tw_complete(&s, &g, &e) == CL_OK && cl_tw_colour_ok(&s, CL_TW_BLACK));
}

static void test_item_from_caption(void)
{
    struct cl_tw_config c;
    cl_tw_config_init(&c);
    c.seed = 4;
    struct cl_tw_item a, b;
    struct cl_err e;
    const char *cap = "a small green heart on the right";
    CHECK(cl_tw_item_from_caption(&c, 3, cap, &a, &e) == CL_OK);
    CHECK(cl_tw_item_from_caption(&c, 3, cap, &b, &e) == CL_OK);
    CHECK(!memcmp(&a.scene, &b.scene, sizeof a.scene) && !strcmp(a.caption, cap));
    CHECK(a.scene.n == 1 && a.scene.obj[0].shape == CL_TW_HEART && a.scene.obj[0].size == CL_TW_SMALL &&
          a.scene.obj[0].colour == CL_TW_GREEN && a.scene.obj[0].position == CL_TW_RIGHT);
    CHECK(a.label == CL_TW_HEART && a.group == a.scene.background && a.scene.background >= 0);
    /* other indices draw the unnamed attributes afresh */
    int differ = 0;
    for (uint64_t i = 0; i < 20; i++) {
        CHECK(cl_tw_item_from_caption(&c, i, cap, &b, &e) == CL_OK);
        differ += b.scene.background != a.scene.background;
    }
    CHECK(differ > 5);
    CHECK(cl_tw_item_from_caption(&c, 0, "a hexagon", &b, &e) == CL_ERR_DATA &&
          strstr(e.msg, "unknown word 'hexagon'"));
    CHECK(cl_tw_item_from_caption(&c, 0, "water", &b, &e) == CL_OK && b.label == -1 &&
          b.scene.n == 0 && !strcmp(b.caption_full, "a water background"));
    char longcap[CL_TW_CAPTION_MAX + 8];
    memset(longcap, 'a', sizeof longcap - 1);
    longcap[sizeof longcap - 1] = '\0';
    CHECK(cl_tw_item_from_caption(&c, 0, longcap, &b, &e) == CL_ERR_DATA);
}

static void test_splits(void)
{
    struct cl_tw_config c;
    cl_tw_config_init(&c);
    struct cl_tw_item it;
    struct cl_err e;
    /* spurious-train: 95% of each class on its own background type */
    int n = 4000, groups[4] = {0};
    c.split = CL_TW_SPLIT_SPURIOUS_TRAIN;
    c.seed = 11;
    for (int i = 0; i < n; i++) {
        CHECK(cl_tw_sample_item(&c, (uint64_t)i, &it, &e) == CL_OK);
        const struct cl_tw_scene *s = &it.scene;
        CHECK(s->obj[0].shape == cl_tw_spurious_shape[it.label]);
        CHECK(it.group == it.label * 2 + cl_tw_bgtype(s->background));
        for (int k = 1; k < s->n; k++)
            CHECK(s->obj[k].shape != CL_TW_TRIANGLE && s->obj[k].shape != CL_TW_SQUARE);
        for (int k = 0; k < s->n; k++)  /* colour carries no background information */
            CHECK(s->obj[k].colour != CL_TW_BLUE && s->obj[k].colour != CL_TW_GREEN);
        groups[it.group]++;
    }
    double majority = (groups[0] + groups[3]) / (double)n;
    CHECKF(fabs(majority - 0.95) < 0.015, "majority share %.3f", majority);
    CHECKF(groups[1] > 60 && groups[2] > 60, "minority groups %d %d", groups[1], groups[2]);
    /* --bias 0.5 removes the correlation */
    c.bias = 0.5;
    int same = 0;
    for (int i = 0; i < n; i++) {
        CHECK(cl_tw_sample_item(&c, (uint64_t)i, &it, &e) == CL_OK);
        same += it.group == 0 || it.group == 3;
    }
    CHECKF(fabs(same / (double)n - 0.5) < 0.04, "share %.3f", same / (double)n);
    /* spurious-test: every block of 4 holds the four groups */
    c.split = CL_TW_SPLIT_SPURIOUS_TEST;
    for (int b = 0; b < 50; b++) {
        int seen = 0;
        for (int j = 0; j < 4; j++) {
            CHECK(cl_tw_sample_item(&c, (uint64_t)(4 * b + j), &it, &e) == CL_OK);
            seen |= 1 << it.group;
        }
        CHECK(seen == 15);
    }
    /* balanced: every block of 80 holds every (shape, background) once */
    c.split = CL_TW_SPLIT_BALANCED;
    for (int b = 0; b < 3; b++) {
        int seen[CL_TW_NSHAPES * CL_TW_NBACKGROUNDS] = {0}, dup = 0;
        for (int j = 0; j < 80; j++) {
            CHECK(cl_tw_sample_item(&c, (uint64_t)(80 * b + j), &it, &e) == CL_OK);
            CHECK(it.label == it.scene.obj[0].shape && it.group == it.scene.background);
            dup += seen[it.label * CL_TW_NBACKGROUNDS + it.group]++ > 0;
        }
        CHECK(dup == 0);
    }
    /* object counts follow min/max */
    c.split = CL_TW_SPLIT_RANDOM;
    c.min_objects = 2;
    c.max_objects = 2;
    for (int i = 0; i < 20; i++) {
        CHECK(cl_tw_sample_item(&c, (uint64_t)i, &it, &e) == CL_OK);
        CHECK(it.scene.n == 2);
    }
    c.max_objects = 10;
    CHECK(cl_tw_sample_item(&c, 0, &it, &e) == CL_ERR_USAGE);
    char name[64];
    cl_tw_group_name(CL_TW_SPLIT_SPURIOUS_TEST, 1, name, sizeof name);
    CHECK(!strcmp(name, "triangle/land"));
    cl_tw_label_name(CL_TW_SPLIT_SPURIOUS_TRAIN, 1, name, sizeof name);
    CHECK(!strcmp(name, "square"));
}

/* Does a single word name an attribute of the toy world? */
static int attribute_word(const char *w)
{
    struct cl_tw_scene s;
    struct cl_err e;
    cl_tw_scene_init(&s, 64);
    if (cl_tw_parse(w, &s, &e) != CL_OK) return 0;
    if (s.background >= 0) return 1;
    for (int k = 0; k < s.n; k++)
        if (s.obj[k].shape >= 0 || s.obj[k].colour >= 0 || s.obj[k].size >= 0 ||
            s.obj[k].position >= 0) return 1;
    return s.n > 1; /* a count */
}

static void test_pool(void)
{
    size_t n = cl_tw_pool(1, 1, NULL, 0);
    struct cl_tw_phrase *p = calloc(n, sizeof *p);
    CHECK(cl_tw_pool(1, 1, p, n) == n);
    CHECK(cl_tw_pool(1, 0, NULL, 0) + cl_tw_pool(0, 1, NULL, 0) == n);
    int fam[CL_TW_NFAMILIES] = {0};
    for (size_t i = 0; i < n; i++) {
        fam[p[i].family]++;
        for (size_t j = 0; j < i; j++) CHECKF(strcmp(p[i].text, p[j].text), "duplicate '%s'", p[i].text);
        struct cl_tw_scene s;
        struct cl_err e;
        cl_tw_scene_init(&s, 64);
        enum cl_status st = cl_tw_parse(p[i].text, &s, &e);
        if (p[i].family == CL_TW_FAM_DISTRACTOR) {
            /* from no family: some unknown word, and no attribute word at all */
            CHECKF(st == CL_ERR_DATA && strstr(e.msg, "unknown word"), "'%s' parses", p[i].text);
            char w[96];
            strcpy(w, p[i].text);
            for (char *t = strtok(w, " -"); t; t = strtok(NULL, " -"))
                CHECKF(!attribute_word(t), "distractor '%s' has attribute word '%s'", p[i].text, t);
            continue;
        }
        /* an attribute phrase parses and names its family's attribute only */
        CHECKF(st == CL_OK, "'%s': %s", p[i].text, e.msg);
        if (st != CL_OK) continue;
        int named[CL_TW_NFAMILIES] = {0};
        named[CL_TW_FAM_BACKGROUND] = s.background >= 0;
        named[CL_TW_FAM_COUNT] = s.n > 1 || strstr(p[i].text, "one ") || strstr(p[i].text, "single");
        for (int k = 0; k < s.n; k++) {
            named[CL_TW_FAM_SHAPE] |= s.obj[k].shape >= 0;
            named[CL_TW_FAM_COLOUR] |= s.obj[k].colour >= 0;
            named[CL_TW_FAM_SIZE] |= s.obj[k].size >= 0;
            named[CL_TW_FAM_POSITION] |= s.obj[k].position >= 0;
        }
        for (int f = 0; f < CL_TW_FAM_DISTRACTOR; f++)
            CHECKF(named[f] == (f == p[i].family), "'%s' (%s) names %s: %d", p[i].text,
                   cl_tw_family_names[p[i].family], cl_tw_family_names[f], named[f]);
    }
    for (int f = 0; f < CL_TW_NFAMILIES; f++) CHECKF(fam[f] >= 10, "family %s: %d", cl_tw_family_names[f], fam[f]);
    free(p);
}

static void test_sizes(void)
{
    /* the smallest and largest images render, and textures look alike across sizes */
    struct cl_tw_rng g;
    struct cl_tw_scene s;
    struct cl_err e;
    for (int S = CL_TW_MIN_SIZE; S <= CL_TW_MAX_SIZE; S *= 4) {
        uint8_t *rgb = malloc((size_t)S * S * 3), *m = malloc((size_t)9 * S * S);
        cl_tw_rng_seed(&g, 9);
        cl_tw_scene_init(&s, S);
        for (int k = 0; k < 9; k++) cl_tw_scene_add(&s);
        CHECK(cl_tw_complete(&s, &g, &e) == CL_OK);
        cl_tw_render(&s, rgb, m);
        for (int k = 0; k < 9; k++) {
            double a = mask_area(m + (size_t)k * S * S, S);
            CHECKF(a > 0.01 * S * S, "S=%d object %d area %.1f", S, k, a);
        }
        free(rgb);
        free(m);
    }
    cl_tw_scene_init(&s, 2000);
    CHECK(cl_tw_complete(&s, &g, &e) == CL_ERR_DATA);
}

static void test_speed(void)
{
    /* sample + caption + render of 64 px scenes: the contract is >= 2,000/s */
    struct cl_tw_config c;
    cl_tw_config_init(&c);
    struct cl_tw_item it;
    struct cl_err e;
    uint8_t rgb[64 * 64 * 3], masks[9 * 64 * 64];
    int n = 4000;
    double t0 = cpu_s();
    for (int i = 0; i < n; i++) {
        cl_tw_sample_item(&c, (uint64_t)i, &it, &e);
        cl_tw_render(&it.scene, rgb, masks);
    }
    double rate = n / (cpu_s() - t0);
    fprintf(stderr, "  sample+render: %.0f scenes per CPU second (64 px, 1-3 objects)\n", rate);
    CHECKF(rate > 2000, "%.0f scenes/s", rate);
}

TEST_MAIN("toyworld", TEST(test_rng), TEST(test_areas), TEST(test_masks),
          TEST(test_colours_stand_out), TEST(test_determinism), TEST(test_size_is_resolution), TEST(test_golden_digest),
          TEST(test_caption_round_trip), TEST(test_parse), TEST(test_item_from_caption), TEST(test_splits), TEST(test_pool),
          TEST(test_sizes), TEST(test_speed))
