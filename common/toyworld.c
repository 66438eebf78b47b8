/* toyworld.c - the toy world: vocabulary, seeded sampling, captions and an
 * integer-only antialiased rasteriser (see toyworld.h for the model). */
#include "toyworld.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Vocabulary                                                                */
/* ------------------------------------------------------------------------ */

const char *const cl_tw_shape_names[CL_TW_NSHAPES] = {
    "circle", "square", "triangle", "star", "cross", "ring", "heart", "diamond"};
static const char *const shape_plurals[CL_TW_NSHAPES] = {
    "circles", "squares", "triangles", "stars", "crosses", "rings", "hearts", "diamonds"};
const char *const cl_tw_colour_names[CL_TW_NCOLOURS] = {
    "red", "orange", "yellow", "green", "cyan", "blue",
    "purple", "pink", "brown", "white", "black", "grey"};
const uint8_t cl_tw_colour_rgb[CL_TW_NCOLOURS][3] = {
    {215, 35, 35}, {250, 135, 20}, {245, 215, 30}, {40, 160, 50}, {30, 205, 215}, {35, 70, 215},
    {130, 50, 180}, {250, 120, 185}, {120, 70, 30}, {250, 250, 250}, {15, 15, 15}, {128, 128, 128}};
const char *const cl_tw_size_names[CL_TW_NSIZES] = {"small", "large"};
const char *const cl_tw_position_names[CL_TW_NPOSITIONS] = {
    "top-left", "top", "top-right", "left", "center", "right",
    "bottom-left", "bottom", "bottom-right"};
const char *const cl_tw_position_phrases[CL_TW_NPOSITIONS] = {
    "at the top left", "at the top", "at the top right", "on the left", "in the center",
    "on the right", "at the bottom left", "at the bottom", "at the bottom right"};
static const char *const position_alt_phrases[CL_TW_NPOSITIONS] = {
    "in the top left corner", "at the top center", "in the top right corner",
    "on the left side", "in the middle", "on the right side",
    "in the bottom left corner", "at the bottom center", "in the bottom right corner"};
static const char *const position_bare[CL_TW_NPOSITIONS] = {
    "top left", "top", "top right", "left", "center", "right",
    "bottom left", "bottom", "bottom right"};
const char *const cl_tw_background_names[CL_TW_NBACKGROUNDS] = {
    "plain", "stripes", "dots", "checker", "water", "grass", "sand", "sky", "brick", "wood"};
/* "on a ___ background" */
static const char *const background_adjectives[CL_TW_NBACKGROUNDS] = {
    "plain", "striped", "dotted", "checkered", "water", "grass", "sand", "sky", "brick", "wood"};
/* the background named as a place ("a red star on water"); NULL: use the adjective form */
static const char *const background_places[CL_TW_NBACKGROUNDS] = {
    NULL, "on stripes", "on dots", "on a checkerboard", "on water", "on grass", "on sand",
    "in the sky", "on bricks", "on wood"};

const int cl_tw_spurious_shape[CL_TW_NCLASSES] = {CL_TW_TRIANGLE, CL_TW_SQUARE};
const char *const cl_tw_bgtype_names[CL_TW_NCLASSES] = {"water", "land"};
const int cl_tw_bgtype_members[CL_TW_NCLASSES][2] = {{CL_TW_WATER, CL_TW_SKY},
                                                    {CL_TW_GRASS, CL_TW_SAND}};
const char *const cl_tw_split_names[CL_TW_NSPLITS] = {
    "random", "balanced", "spurious-train", "spurious-test"};
const char *const cl_tw_family_names[CL_TW_NFAMILIES] = {
    "colour", "shape", "size", "position", "background", "count", "distractor"};

int cl_tw_bgtype(int background)
{
    for (int t = 0; t < CL_TW_NCLASSES; t++)
        for (int j = 0; j < 2; j++)
            if (cl_tw_bgtype_members[t][j] == background) return t;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Palettes and colour distance                                              */
/* ------------------------------------------------------------------------ */

/* Muted colours for the pattern backgrounds: 6 light, then 6 dark.  Plain
 * backgrounds use any one; stripes, dots and checker pair a light with a dark, drawn
 * at PATTERN_INK/256 of its strength, so that the pattern stays clearly visible but
 * its dots and squares do not compete with the objects (at full strength a small ViT
 * learned shape at half the speed).  Objects must stand out from the full dark colour. */
#define PATTERN_INK 96
#define NPATTERN 12
#define NLIGHT 6
static const uint8_t pattern_rgb[NPATTERN][3] = {
    {232, 218, 190}, {205, 205, 205}, {190, 210, 235}, {200, 228, 190}, {218, 205, 238},
    {242, 214, 218},
    {80, 90, 105}, {38, 48, 90}, {42, 78, 52}, {98, 42, 48}, {40, 98, 102}, {112, 110, 62}};

/* The textured backgrounds' main colours (what an object must stand out from). */
static const uint8_t water_rgb[3][3] = {{25, 75, 145}, {55, 120, 190}, {150, 195, 230}};
static const uint8_t sky_rgb[3][3] = {{85, 145, 220}, {165, 205, 245}, {245, 247, 252}};
static const uint8_t grass_rgb[3][3] = {{30, 95, 28}, {58, 138, 45}, {110, 178, 64}};
static const uint8_t sand_rgb[3][3] = {{200, 170, 118}, {224, 198, 145}, {238, 220, 178}};
static const uint8_t brick_rgb[3][3] = {{158, 60, 44}, {178, 75, 56}, {196, 190, 178}};
static const uint8_t wood_rgb[3][3] = {{140, 92, 50}, {188, 138, 82}, {92, 58, 30}};

/* A colour stands out when its "redmean" distance to every palette colour is at
 * least this (squared; the scale is roughly Euclidean RGB). */
#define MIN_DIST2 (150 * 150)

static int32_t colour_dist2(const uint8_t a[3], const uint8_t b[3])
{
    int32_t rmean = (a[0] + b[0]) / 2;
    int32_t dr = a[0] - b[0], dg = a[1] - b[1], db = a[2] - b[2];
    return (((512 + rmean) * dr * dr) >> 8) + 4 * dg * dg + (((767 - rmean) * db * db) >> 8);
}

/* The colours a background instance shows; returns how many (<= 3). */
static int background_palette(const struct cl_tw_scene *s, const uint8_t *out[3])
{
    const uint8_t (*fixed)[3] = NULL;
    switch (s->background) {
    case CL_TW_PLAIN: out[0] = pattern_rgb[s->bg_colour[0]]; return 1;
    case CL_TW_STRIPES: case CL_TW_DOTS: case CL_TW_CHECKER:
        out[0] = pattern_rgb[s->bg_colour[0]];
        out[1] = pattern_rgb[s->bg_colour[1]];
        return 2;
    case CL_TW_WATER: fixed = water_rgb; break;
    case CL_TW_SKY: fixed = sky_rgb; break;
    case CL_TW_GRASS: fixed = grass_rgb; break;
    case CL_TW_SAND: fixed = sand_rgb; break;
    case CL_TW_BRICK: fixed = brick_rgb; break;
    default: fixed = wood_rgb; break;
    }
    for (int i = 0; i < 3; i++) out[i] = fixed[i];
    return 3;
}

static int is_pattern(int background)
{
    return background == CL_TW_PLAIN || background == CL_TW_STRIPES ||
           background == CL_TW_DOTS || background == CL_TW_CHECKER;
}

int cl_tw_colour_ok(const struct cl_tw_scene *s, int colour)
{
    const uint8_t *pal[3];
    int np = background_palette(s, pal);
    for (int i = 0; i < np; i++)
        if (colour_dist2(cl_tw_colour_rgb[colour], pal[i]) < MIN_DIST2) return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void cl_tw_rng_seed(struct cl_tw_rng *g, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) g->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cl_tw_rng_next(struct cl_tw_rng *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

uint32_t cl_tw_rng_below(struct cl_tw_rng *g, uint32_t n)
{
    /* 64-bit draw modulo n: the bias is below n / 2^64, i.e. nil for our n. */
    return (uint32_t)(cl_tw_rng_next(g) % (n ? n : 1));
}

/* A PRNG for one item of a data set, from (seed, split, index) only. */
static void item_rng(struct cl_tw_rng *g, uint64_t seed, int split, uint64_t index)
{
    uint64_t x = seed;
    uint64_t a = splitmix64(&x);
    x = a ^ (0xD1B54A32D192ED03ull * (uint64_t)(split + 1));
    uint64_t b = splitmix64(&x);
    x = b ^ index;
    cl_tw_rng_seed(g, splitmix64(&x));
}

/* ------------------------------------------------------------------------ */
/* Scenes: specs, completion, layout                                         */
/* ------------------------------------------------------------------------ */

void cl_tw_scene_init(struct cl_tw_scene *s, int size)
{
    memset(s, 0, sizeof *s);
    s->size = size;
    s->background = -1;
}

struct cl_tw_object *cl_tw_scene_add(struct cl_tw_scene *s)
{
    if (s->n >= CL_TW_MAX_OBJECTS) return NULL;
    struct cl_tw_object *o = &s->obj[s->n++];
    memset(o, 0, sizeof *o);
    o->shape = o->colour = o->size = o->position = -1;
    return o;
}

/* Draw the background's palette (pattern backgrounds only). */
static void sample_palette(struct cl_tw_scene *s, struct cl_tw_rng *g)
{
    s->bg_colour[0] = s->bg_colour[1] = 0;
    if (s->background == CL_TW_PLAIN) {
        s->bg_colour[0] = (int)cl_tw_rng_below(g, NPATTERN);
    } else if (is_pattern(s->background)) {
        s->bg_colour[0] = (int)cl_tw_rng_below(g, NLIGHT);
        s->bg_colour[1] = NLIGHT + (int)cl_tw_rng_below(g, NPATTERN - NLIGHT);
    }
}

static int explicit_colours_ok(const struct cl_tw_scene *s)
{
    for (int k = 0; k < s->n; k++)
        if (s->obj[k].colour >= 0 && !cl_tw_colour_ok(s, s->obj[k].colour)) return 0;
    return 1;
}

/* Object geometry, in units of 1/64 pixel: radius fractions of S in 1/1000.  Large
 * objects fill their grid cell: radius up to 0.158 S, plus half a pixel of
 * antialiasing, stays inside the cell's half width S/6.  Small ones are ~4/5 of that
 * (at 0.105 S they were too small for a ViT with 8-pixel patches to learn their shape
 * within the toy CLIP's training budget). */
#define LARGE_MIN 148
#define SMALL_MIN 115
#define RADIUS_SPREAD 11 /* radius = S * (MIN + [0, SPREAD)) / 1000 */

static void layout_object(struct cl_tw_object *o, int size, struct cl_tw_rng *g)
{
    int32_t su = size * 64;                         /* image side, units */
    int32_t half_cell = su / 6;
    int32_t base = o->size == CL_TW_LARGE ? LARGE_MIN : SMALL_MIN;
    o->r = su * (base + (int32_t)cl_tw_rng_below(g, RADIUS_SPREAD)) / 1000;
    int col = o->position % 3, row = o->position / 3;
    o->cx = su * (2 * col + 1) / 6;
    o->cy = su * (2 * row + 1) / 6;
    /* jitter within the cell, keeping half a pixel clear of its border; drawn
     * as a fraction of the room so that every size consumes the same numbers
     * (--size changes the resolution, not the scene) */
    int32_t slack = half_cell - o->r - 32;
    int32_t jx = (int32_t)cl_tw_rng_below(g, 2001) - 1000, jy = (int32_t)cl_tw_rng_below(g, 2001) - 1000;
    if (slack > 0) {
        o->cx += slack * jx / 1000;
        o->cy += slack * jy / 1000;
    }
    for (int c = 0; c < 3; c++) {
        int v = cl_tw_colour_rgb[o->colour][c] + (int)cl_tw_rng_below(g, 17) - 8;
        o->rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

enum cl_status cl_tw_complete(struct cl_tw_scene *s, struct cl_tw_rng *g, struct cl_err *e)
{
    if (s->size < CL_TW_MIN_SIZE || s->size > CL_TW_MAX_SIZE)
        return cl_errf(e, CL_ERR_DATA, "image size %d out of range (expected %d..%d)",
                       s->size, CL_TW_MIN_SIZE, CL_TW_MAX_SIZE);
    if (s->n < 0 || s->n > CL_TW_MAX_OBJECTS)
        return cl_errf(e, CL_ERR_DATA, "%d objects (expected 0..%d)", s->n, CL_TW_MAX_OBJECTS);
    if (s->background >= CL_TW_NBACKGROUNDS)
        return cl_errf(e, CL_ERR_DATA, "background index %d out of range", s->background);
    uint32_t used = 0;
    for (int k = 0; k < s->n; k++) {
        const struct cl_tw_object *o = &s->obj[k];
        if (o->shape >= CL_TW_NSHAPES || o->colour >= CL_TW_NCOLOURS ||
            o->size >= CL_TW_NSIZES || o->position >= CL_TW_NPOSITIONS)
            return cl_errf(e, CL_ERR_DATA, "object %d: attribute index out of range", k);
        if (o->position >= 0) {
            if (used & (1u << o->position))
                return cl_errf(e, CL_ERR_DATA, "two objects %s: each grid cell holds one object",
                               cl_tw_position_phrases[o->position]);
            used |= 1u << o->position;
        }
    }
    uint32_t allowed = ((1u << CL_TW_NSHAPES) - 1) & ~s->exclude_shapes;
    for (int k = 0; k < s->n; k++)
        if (s->obj[k].shape < 0 && !allowed)
            return cl_errf(e, CL_ERR_DATA, "every shape is excluded");

    /* background and palette: redraw until every named colour stands out */
    int bg_given = s->background >= 0;
    for (int attempt = 0;; attempt++) {
        if (!bg_given) s->background = (int)cl_tw_rng_below(g, CL_TW_NBACKGROUNDS);
        sample_palette(s, g);
        if (explicit_colours_ok(s)) break;
        if (attempt == 63 || (bg_given && !is_pattern(s->background))) {
            for (int k = 0; k < s->n; k++) {
                int c = s->obj[k].colour;
                if (c < 0 || cl_tw_colour_ok(s, c)) continue;
                if (bg_given)
                    return cl_errf(e, CL_ERR_DATA, "a %s object would not stand out on a %s background",
                                   cl_tw_colour_names[c], cl_tw_background_names[s->background]);
                return cl_errf(e, CL_ERR_DATA, "found no background on which a %s object stands out",
                               cl_tw_colour_names[c]);
            }
        }
    }
    s->texture_seed = (uint32_t)cl_tw_rng_next(g);

    /* positions: the unnamed ones take free cells at random */
    for (int k = 0; k < s->n; k++) {
        struct cl_tw_object *o = &s->obj[k];
        if (o->position >= 0) continue;
        int free_cells[CL_TW_NPOSITIONS], nfree = 0;
        for (int p = 0; p < CL_TW_NPOSITIONS; p++)
            if (!(used & (1u << p))) free_cells[nfree++] = p;
        o->position = free_cells[cl_tw_rng_below(g, (uint32_t)nfree)];
        used |= 1u << o->position;
    }
    /* shape, size, colour, then geometry, object by object */
    for (int k = 0; k < s->n; k++) {
        struct cl_tw_object *o = &s->obj[k];
        if (o->shape < 0) {
            int choice[CL_TW_NSHAPES], nc = 0;
            for (int i = 0; i < CL_TW_NSHAPES; i++)
                if (allowed & (1u << i)) choice[nc++] = i;
            o->shape = choice[cl_tw_rng_below(g, (uint32_t)nc)];
        }
        if (o->size < 0) o->size = (int)cl_tw_rng_below(g, CL_TW_NSIZES);
        if (o->colour < 0) {
            int choice[CL_TW_NCOLOURS], nc = 0;
            for (int i = 0; i < CL_TW_NCOLOURS; i++)
                if (!(s->exclude_colours & (1u << i)) && cl_tw_colour_ok(s, i)) choice[nc++] = i;
            if (nc == 0) /* cannot happen with the tables above; checked by a test */
                return cl_errf(e, CL_ERR_DATA, "no colour stands out on the %s background",
                               cl_tw_background_names[s->background]);
            o->colour = choice[cl_tw_rng_below(g, (uint32_t)nc)];
        }
        layout_object(o, s->size, g);
    }
    return CL_OK;
}

void cl_tw_object_box(const struct cl_tw_scene *s, int k, int box[4])
{
    const struct cl_tw_object *o = &s->obj[k];
    int x0 = (o->cx - o->r) / 64, x1 = (o->cx + o->r) / 64 + 1;
    int y0 = (o->cy - o->r) / 64, y1 = (o->cy + o->r) / 64 + 1;
    box[0] = x0 < 0 ? 0 : x0;
    box[1] = y0 < 0 ? 0 : y0;
    box[2] = x1 > s->size ? s->size : x1;
    box[3] = y1 > s->size ? s->size : y1;
}

/* ------------------------------------------------------------------------ */
/* Rasteriser: exact 4x4 point sampling by scanlines, integer only           */
/* ------------------------------------------------------------------------ */

/* Shape outlines in 1/1024 of the object's radius, y down, inside [-1024, 1024]^2. */
static const int16_t tri_xy[3][2] = {{0, -1000}, {1024, 860}, {-1024, 860}};
static const int16_t square_xy[4][2] = {{-830, -830}, {830, -830}, {830, 830}, {-830, 830}};
static const int16_t diamond_xy[4][2] = {{0, -1000}, {870, 0}, {0, 1000}, {-870, 0}};
static const int16_t star_xy[10][2] = {
    {0, -927}, {253, -251}, {974, -219}, {409, 230}, {602, 926},
    {0, 527}, {-602, 926}, {-409, 230}, {-974, -219}, {-253, -251}};
static const int16_t cross_xy[12][2] = {
    {-330, -970}, {330, -970}, {330, -330}, {970, -330}, {970, 330}, {330, 330},
    {330, 970}, {-330, 970}, {-330, 330}, {-970, 330}, {-970, -330}, {-330, -330}};
/* heart: two lobes (circles) plus the polygon from their tangents to the tip */
static const int16_t heart_xy[5][2] = {{0, 891}, {856, -30}, {481, -379}, {-481, -379}, {-856, -30}};
static const int16_t heart_lobes[2][2] = {{481, -379}, {-481, -379}};
#define HEART_LOBE_R 512
#define RING_INNER 560

struct geom {
    int npoly;
    int32_t px[12], py[12];   /* polygon vertices, units */
    int ncirc;
    int32_t ccx[2], ccy[2];   /* disc centres, units */
    int64_t cr2[2];           /* disc radii squared */
    int64_t hole_r2;          /* ring: the hole's radius squared (0: no hole) */
};

static void make_geom(const struct cl_tw_object *o, struct geom *g)
{
    const int16_t (*poly)[2] = NULL;
    int np = 0;
    int64_t r = o->r;
    memset(g, 0, sizeof *g);
    switch (o->shape) {
    case CL_TW_CIRCLE:
        g->ncirc = 1; g->ccx[0] = o->cx; g->ccy[0] = o->cy; g->cr2[0] = r * r;
        break;
    case CL_TW_RING: {
        int64_t ri = r * RING_INNER / 1024;
        g->ncirc = 1; g->ccx[0] = o->cx; g->ccy[0] = o->cy; g->cr2[0] = r * r;
        g->hole_r2 = ri * ri;
        break;
    }
    case CL_TW_SQUARE: poly = square_xy; np = 4; break;
    case CL_TW_TRIANGLE: poly = tri_xy; np = 3; break;
    case CL_TW_STAR: poly = star_xy; np = 10; break;
    case CL_TW_CROSS: poly = cross_xy; np = 12; break;
    case CL_TW_DIAMOND: poly = diamond_xy; np = 4; break;
    case CL_TW_HEART: {
        int64_t lr = r * HEART_LOBE_R / 1024;
        poly = heart_xy; np = 5;
        g->ncirc = 2;
        for (int i = 0; i < 2; i++) {
            g->ccx[i] = o->cx + (int32_t)(r * heart_lobes[i][0] / 1024);
            g->ccy[i] = o->cy + (int32_t)(r * heart_lobes[i][1] / 1024);
            g->cr2[i] = lr * lr;
        }
        break;
    }
    default: break;
    }
    g->npoly = np;
    for (int i = 0; i < np; i++) {
        g->px[i] = o->cx + (int32_t)(r * poly[i][0] / 1024);
        g->py[i] = o->cy + (int32_t)(r * poly[i][1] / 1024);
    }
}

static int64_t floor_div(int64_t a, int64_t b) /* b > 0 */
{
    int64_t q = a / b;
    if (a % b != 0 && a < 0) q--;
    return q;
}
static int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

/* floor(sqrt(v)) exactly, for 0 <= v < 2^62 */
static int64_t isqrt64(int64_t v)
{
    int64_t r = 0, bit = (int64_t)1 << 60;
    while (bit > v) bit >>= 2;
    while (bit) {
        if (v >= r + bit) { v -= r + bit; r = (r >> 1) + bit; }
        else r >>= 1;
        bit >>= 2;
    }
    return r;
}

/* Set row[k - k0] = val for sample columns k in [ka, kb] (clipped to [k0, k1)). */
static void fill_span(uint8_t *row, int64_t k0, int64_t k1, int64_t ka, int64_t kb, uint8_t val)
{
    if (ka < k0) ka = k0;
    if (kb > k1 - 1) kb = k1 - 1;
    for (int64_t k = ka; k <= kb; k++) row[k - k0] = val;
}

/* Sample columns k (X = 16k + 8) inside the disc |X - cx|^2 <= q at this row. */
static void disc_span(uint8_t *row, int64_t k0, int64_t k1, int64_t cx, int64_t q, uint8_t val)
{
    if (q < 0) return;
    int64_t s = isqrt64(q);
    fill_span(row, k0, k1, ceil_div(cx - s - 8, 16), floor_div(cx + s - 8, 16), val);
}

/* Mark the sample points of the subrow at Y inside the shape (row[k - k0], k in [k0, k1)). */
static void geom_row(const struct geom *g, int64_t Y, uint8_t *row, int64_t k0, int64_t k1)
{
    if (g->npoly) {
        /* even-odd rule: point k is inside iff an odd number of edges cross the
         * row to its right; t[] = first k at or right of each crossing */
        int64_t t[12];
        int nt = 0;
        for (int i = 0; i < g->npoly; i++) {
            int j = (i + 1) % g->npoly;
            int64_t xa = g->px[i], ya = g->py[i], xb = g->px[j], yb = g->py[j];
            if ((ya > Y) == (yb > Y)) continue;
            if (ya > yb) { int64_t tx = xa, ty = ya; xa = xb; ya = yb; xb = tx; yb = ty; }
            int64_t dy = yb - ya;
            int64_t v = ceil_div(xa * dy + (Y - ya) * (xb - xa) - 8 * dy, 16 * dy);
            int m = nt++;
            while (m > 0 && t[m - 1] > v) { t[m] = t[m - 1]; m--; }
            t[m] = v;
        }
        for (int i = 0; i + 1 < nt; i += 2) fill_span(row, k0, k1, t[i], t[i + 1] - 1, 1);
    }
    for (int c = 0; c < g->ncirc; c++) {
        int64_t dy = Y - g->ccy[c];
        disc_span(row, k0, k1, g->ccx[c], g->cr2[c] - dy * dy, 1);
    }
    if (g->hole_r2) { /* strictly inside the hole: d^2 < ri^2 */
        int64_t dy = Y - g->ccy[0];
        disc_span(row, k0, k1, g->ccx[0], g->hole_r2 - 1 - dy * dy, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Backgrounds: integer value noise, an integer sine, procedural textures     */
/* ------------------------------------------------------------------------ */

/* Texture coordinates are in 1/256 pixel of a 64-pixel reference image
 * (0..16384 across), so a texture looks the same at every --size. */
#define REF 256

static uint32_t hash3(uint32_t a, uint32_t b, uint32_t seed)
{
    uint32_t h = seed ^ (a * 0x9E3779B1u) ^ (b * 0x85EBCA77u);
    h ^= h >> 16; h *= 0x7FEB352Du;
    h ^= h >> 15; h *= 0x846CA68Bu;
    h ^= h >> 16;
    return h;
}

static uint32_t fade(uint32_t f) { return f * f * (768 - 2 * f) >> 16; } /* 0..256 -> 0..256 */

/* Smooth value noise in 0..255 with cells px by py (texture units). */
static int vnoise(uint32_t X, uint32_t Y, uint32_t px, uint32_t py, uint32_t seed)
{
    uint32_t ix = X / px, iy = Y / py;
    uint32_t sx = fade((X % px) * 256 / px), sy = fade((Y % py) * 256 / py);
    uint32_t a = hash3(ix, iy, seed) & 255, b = hash3(ix + 1, iy, seed) & 255;
    uint32_t c = hash3(ix, iy + 1, seed) & 255, d = hash3(ix + 1, iy + 1, seed) & 255;
    uint32_t top = a * (256 - sx) + b * sx, bot = c * (256 - sx) + d * sx;
    return (int)((top * (256 - sy) + bot * sy) >> 16);
}

/* sin(2 pi phase / 1024) * 256, Bhaskara's rational approximation (max error
 * ~0.2%), exact integers so every platform agrees. */
static int isin(uint32_t phase)
{
    uint32_t p = phase & 1023, t = p & 511;
    int32_t w = (int32_t)(t * (512 - t));               /* 0..65536 */
    int32_t v = (int32_t)((int64_t)4096 * w / (1310720 - 4 * w));
    return p < 512 ? v : -v;
}

static int clamp256(int32_t v) { return v < 0 ? 0 : v > 256 ? 256 : v; }
static uint8_t clamp8(int32_t v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* out = a * (256 - t) / 256 + b * t / 256, t in 0..256 */
static void mix(uint8_t *out, const uint8_t a[3], const uint8_t b[3], int t)
{
    for (int c = 0; c < 3; c++) out[c] = (uint8_t)((a[c] * (256 - t) + b[c] * t + 128) >> 8);
}

static void add_noise(uint8_t *px, int delta)
{
    for (int c = 0; c < 3; c++) px[c] = clamp8(px[c] + delta);
}

/* Coverage (0..256) of the "on" half of a square wave of period P at coordinate
 * u, with a one-pixel linear ramp (pix units) at its edges. */
static int square_wave(uint32_t u, uint32_t P, int32_t pix)
{
    int32_t f = (int32_t)(u % P), half = (int32_t)P / 2, d;
    if (f < half) d = f < half - f ? f : half - f;
    else d = -(f - half < (int32_t)P - f ? f - half : (int32_t)P - f);
    return clamp256(128 + d * 256 / pix);
}

struct tex {
    uint32_t seed;
    int S;
    int32_t pix;                /* texture units per output pixel */
    uint8_t c0[3], c1[3];       /* pattern palette (plain: c0) */
    uint32_t p[6];              /* per-scene parameters drawn from the seed */
};

static void texel(const struct tex *t, int background, uint32_t X, uint32_t Y, uint8_t *out)
{
    const uint32_t *p = t->p;
    switch (background) {
    case CL_TW_PLAIN:
        memcpy(out, t->c0, 3);
        add_noise(out, (vnoise(X, Y, 16 * REF, 16 * REF, t->seed) - 128) / 24);
        break;
    case CL_TW_STRIPES: {
        uint32_t period = (7 + p[0] % 5) * REF, u;
        switch (p[1] % 4) {
        case 0: u = Y; break;
        case 1: u = X; break;
        case 2: u = (X + Y) * 181 >> 8; break;
        default: u = (X + 16384 - Y) * 181 >> 8; break;
        }
        mix(out, t->c0, t->c1, square_wave(u + p[2] % period, period, t->pix));
        add_noise(out, (vnoise(X, Y, 12 * REF, 12 * REF, t->seed) - 128) / 40);
        break;
    }
    case CL_TW_DOTS: {
        int32_t P = (int32_t)(10 + p[0] % 5) * REF, rho = (int32_t)(22 + p[1] % 10) * REF / 10;
        uint32_t yy = Y + p[2] % (uint32_t)P, row = yy / (uint32_t)P;
        uint32_t xx = X + p[3] % (uint32_t)P + ((p[4] & 1) && (row & 1) ? (uint32_t)P / 2 : 0);
        int64_t dx = (int64_t)(xx % (uint32_t)P) - P / 2, dy = (int64_t)(yy % (uint32_t)P) - P / 2;
        int64_t d2 = dx * dx + dy * dy, h = t->pix / 2;
        int64_t outer = (rho + h) * (int64_t)(rho + h), inner = rho > h ? (rho - h) * (int64_t)(rho - h) : 0;
        int cov = d2 <= inner ? 256 : d2 >= outer ? 0 : (int)((outer - d2) * 256 / (outer - inner));
        mix(out, t->c0, t->c1, cov);
        add_noise(out, (vnoise(X, Y, 12 * REF, 12 * REF, t->seed) - 128) / 40);
        break;
    }
    case CL_TW_CHECKER: {
        uint32_t q = (7 + p[0] % 4) * REF;
        int a = square_wave(X + p[1] % (2 * q), 2 * q, t->pix);
        int b = square_wave(Y + p[2] % (2 * q), 2 * q, t->pix);
        mix(out, t->c0, t->c1, (a * (256 - b) + b * (256 - a)) >> 8);
        add_noise(out, (vnoise(X, Y, 12 * REF, 12 * REF, t->seed) - 128) / 40);
        break;
    }
    case CL_TW_WATER: {
        /* horizontal swell bands, bent by a slow horizontal wave and noise */
        int bend = isin(X * 1024 / (26 * REF) + p[0]) * 2 * REF / 256;      /* +-2 ref px */
        int warp = (vnoise(X, Y, 14 * REF, 6 * REF, t->seed) - 128) * 3;
        int band = isin((uint32_t)((int32_t)Y + 4 * REF + bend) * 1024 / (7 * REF) +
                        (uint32_t)warp + p[1]);
        int depth = (int)(Y / 128);                               /* 0..128 down the image */
        mix(out, water_rgb[1], water_rgb[0], clamp256(96 + depth - band / 3));
        if (band > 170) mix(out, out, water_rgb[2], (band - 170) * 2);
        break;
    }
    case CL_TW_SKY: {
        uint8_t grad[3];
        mix(grad, sky_rgb[0], sky_rgb[1], (int)(Y / 64));
        int n = (2 * vnoise(X, Y, 20 * REF, 12 * REF, t->seed) +
                 vnoise(X, Y, 8 * REF, 6 * REF, t->seed ^ 0x51u)) / 3;
        mix(out, grad, sky_rgb[2], clamp256((n - 140) * 6));
        break;
    }
    case CL_TW_GRASS: {
        uint32_t sway = (uint32_t)(2 * REF + 2 * isin(Y * 1024 / (20 * REF))); /* 0..4 ref px */
        int blades = vnoise(X + sway, Y, REF * 3 / 2, 9 * REF, t->seed);
        int patches = vnoise(X, Y, 20 * REF, 20 * REF, t->seed ^ 0x77u);
        int v = (3 * blades + patches) / 4;
        if (v < 128) mix(out, grass_rgb[0], grass_rgb[1], v * 2);
        else mix(out, grass_rgb[1], grass_rgb[2], (v - 128) * 2);
        break;
    }
    case CL_TW_SAND: {
        int warp = (vnoise(X, Y, 8 * REF, 8 * REF, t->seed) - 128) * 3;
        int ripple = isin((X + Y / 2) * 1024 / (9 * REF) + p[0] + (uint32_t)warp);
        int grain = (int)(hash3(X / REF, Y / REF, t->seed ^ 0x99u) & 31) - 16;
        int v = clamp256(128 + ripple / 3 + grain * 3);
        if (v < 128) mix(out, sand_rgb[0], sand_rgb[1], v * 2);
        else mix(out, sand_rgb[1], sand_rgb[2], (v - 128) * 2);
        break;
    }
    case CL_TW_BRICK: {
        uint32_t H = 8 * REF, L = 16 * REF, m = REF * 6 / 5;
        uint32_t yy = Y + p[0] % H, row = yy / H, fy = yy % H;
        uint32_t xx = X + p[1] % L + (row & 1) * L / 2, col = xx / L, fx = xx % L;
        int32_t dyb = (int32_t)(fy < H - fy ? fy : H - fy), dxb = (int32_t)(fx < L - fx ? fx : L - fx);
        int32_t d = (dyb < dxb ? dyb : dxb) - (int32_t)m / 2;
        uint32_t h = hash3(col, row, t->seed);
        uint8_t brick[3];
        int jr = (int)(h & 31) - 16, jg = (int)((h >> 5) & 15) - 8;
        brick[0] = clamp8(brick_rgb[0][0] + jr);
        brick[1] = clamp8(brick_rgb[0][1] + jg);
        brick[2] = clamp8(brick_rgb[0][2] + jg);
        mix(out, brick_rgb[2], brick, clamp256(128 + d * 256 / t->pix));
        add_noise(out, (vnoise(X, Y, 3 * REF, 3 * REF, t->seed ^ 0x33u) - 128) / 16);
        break;
    }
    default: { /* wood: planks with grain and dark seams */
        uint32_t H = 11 * REF, seam = REF * 4 / 5;
        uint32_t yy = Y + p[0] % H, plank = yy / H, fy = yy % H;
        int32_t dseam = (int32_t)(fy < H - fy ? fy : H - fy) - (int32_t)seam / 2;
        int warp = (vnoise(X + plank * 5000, Y, 14 * REF, 2 * REF, t->seed) - 128) * 6;
        int grain = isin(fy * 1024 / (3 * REF) + (uint32_t)warp + plank * 300);
        int tone = (int)(hash3(plank, 7, t->seed) & 63) - 32;
        uint8_t wood[3];
        mix(wood, wood_rgb[0], wood_rgb[1], clamp256(128 + grain / 3 + tone));
        mix(out, wood_rgb[2], wood, clamp256(128 + dseam * 256 / t->pix));
        break;
    }
    }
}

static void render_background(const struct cl_tw_scene *s, uint8_t *rgb)
{
    struct tex t;
    int S = s->size;
    t.seed = s->texture_seed;
    t.S = S;
    t.pix = 16384 / S;
    memcpy(t.c0, pattern_rgb[s->bg_colour[0]], 3);
    mix(t.c1, pattern_rgb[s->bg_colour[0]], pattern_rgb[s->bg_colour[1]], PATTERN_INK);
    for (int i = 0; i < 6; i++) t.p[i] = hash3((uint32_t)i, 0xB0u, s->texture_seed);
    for (int y = 0; y < S; y++) {
        uint32_t Y = (uint32_t)(2 * y + 1) * 8192u / (uint32_t)S;
        uint8_t *row = rgb + (size_t)y * S * 3;       /* [S,3] */
        for (int x = 0; x < S; x++) {
            uint32_t X = (uint32_t)(2 * x + 1) * 8192u / (uint32_t)S;
            texel(&t, s->background, X, Y, row + 3 * x);
        }
    }
}

void cl_tw_render(const struct cl_tw_scene *s, uint8_t *rgb, uint8_t *masks)
{
    int S = s->size;
    uint8_t subrow[4 * CL_TW_MAX_SIZE + 4];  /* [4 * box width] inside flags of one subrow */
    uint8_t cov[CL_TW_MAX_SIZE];              /* [box width] coverage 0..16 */
    render_background(s, rgb);
    if (masks) memset(masks, 0, (size_t)s->n * S * S);
    for (int k = 0; k < s->n; k++) {
        const struct cl_tw_object *o = &s->obj[k];
        struct geom g;
        int box[4];
        make_geom(o, &g);
        cl_tw_object_box(s, k, box);
        int w = box[2] - box[0];
        if (w <= 0 || box[3] <= box[1]) continue;
        int64_t k0 = 4 * (int64_t)box[0], k1 = 4 * (int64_t)box[2];
        for (int y = box[1]; y < box[3]; y++) {
            memset(cov, 0, (size_t)w);
            for (int j = 0; j < 4; j++) {
                memset(subrow, 0, (size_t)(4 * w));
                geom_row(&g, 64 * (int64_t)y + 8 + 16 * j, subrow, k0, k1);
                for (int x = 0; x < w; x++)
                    cov[x] += subrow[4 * x] + subrow[4 * x + 1] + subrow[4 * x + 2] + subrow[4 * x + 3];
            }
            uint8_t *px = rgb + ((size_t)y * S + box[0]) * 3;
            uint8_t *mrow = masks ? masks + ((size_t)k * S + y) * S + box[0] : NULL;
            for (int x = 0; x < w; x++) {
                int c = cov[x];
                if (!c) continue;
                for (int ch = 0; ch < 3; ch++)
                    px[3 * x + ch] = (uint8_t)((px[3 * x + ch] * (16 - c) + o->rgb[ch] * c + 8) >> 4);
                if (mrow) mrow[x] = (uint8_t)((c * 255 + 8) / 16);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Captions: generation                                                      */
/* ------------------------------------------------------------------------ */

struct sbuf { char *p; size_t cap, len; int overflow; };

static void sb_add(struct sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->overflow || b->len + n + 1 > b->cap) { b->overflow = 1; return; }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static int starts_with_vowel(const char *w)
{
    return w[0] == 'a' || w[0] == 'e' || w[0] == 'i' || w[0] == 'o' || w[0] == 'u';
}

/* "a"/"an" chosen for the word that follows */
static void sb_article(struct sbuf *b, const char *next)
{
    sb_add(b, starts_with_vowel(next) ? "an " : "a ");
}

static int sb_end(struct sbuf *b)
{
    if (b->overflow) { if (b->cap) b->p[0] = '\0'; return -1; }
    return (int)b->len;
}

/* One object: [size] [colour] noun [position]; -1 attributes are left out. */
static void object_phrase(struct sbuf *b, int size, int colour, int shape, int position,
                          int noun_shape, int alt_position)
{
    const char *words[3];
    int nw = 0;
    if (size >= 0) words[nw++] = cl_tw_size_names[size];
    if (colour >= 0) words[nw++] = cl_tw_colour_names[colour];
    words[nw++] = shape >= 0 ? cl_tw_shape_names[shape] : noun_shape ? "shape" : "object";
    sb_article(b, words[0]);
    for (int i = 0; i < nw; i++) {
        if (i) sb_add(b, " ");
        sb_add(b, words[i]);
    }
    if (position >= 0) {
        sb_add(b, " ");
        sb_add(b, alt_position ? position_alt_phrases[position] : cl_tw_position_phrases[position]);
    }
}

static void join_sep(struct sbuf *b, int i, int n)
{
    if (i == 0) return;
    sb_add(b, i == n - 1 ? " and " : ", ");
}

static void background_suffix(struct sbuf *b, int bg, int form)
{
    if (form == 1 && background_places[bg]) {
        sb_add(b, " ");
        sb_add(b, background_places[bg]);
        return;
    }
    sb_add(b, form == 2 ? " with a " : " on a ");
    sb_add(b, background_adjectives[bg]);
    sb_add(b, " background");
}

int cl_tw_caption_full(const struct cl_tw_scene *s, char *buf, size_t cap)
{
    struct sbuf b = {buf, cap, 0, 0};
    if (cap) buf[0] = '\0';
    for (int k = 0; k < s->n; k++) {
        const struct cl_tw_object *o = &s->obj[k];
        join_sep(&b, k, s->n);
        object_phrase(&b, o->size, o->colour, o->shape, o->position, 0, 0);
    }
    if (s->n == 0) {
        sb_article(&b, background_adjectives[s->background]);
        sb_add(&b, background_adjectives[s->background]);
        sb_add(&b, " background");
    } else {
        background_suffix(&b, s->background, 0);
    }
    return sb_end(&b);
}

static const char *const count_words[10] = {
    "no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};

static int chance(struct cl_tw_rng *g, uint32_t percent)
{
    return cl_tw_rng_below(g, 100) < percent;
}

int cl_tw_caption(const struct cl_tw_scene *s, struct cl_tw_rng *g,
                  struct cl_tw_scene *mentioned, char *buf, size_t cap)
{
    static const char *const prefixes[] = {"a photo of ", "an image of ", "a picture of ", "there is "};
    struct sbuf b = {buf, cap, 0, 0};
    struct cl_tw_scene m;
    cl_tw_scene_init(&m, s->size);
    if (cap) buf[0] = '\0';
    uint32_t style = cl_tw_rng_below(g, 100);        /* 0-24 full, 25-31 count only, rest varied */
    int full = style < 25 || s->n == 0, count_only = !full && style < 32;
    int bg_mentioned = full || chance(g, 70);
    int bg_form = (int)cl_tw_rng_below(g, 20);         /* 0-11 "on a X background", 12-16 place, 17-19 "with" */
    bg_form = bg_form < 12 ? 0 : bg_form < 17 ? 1 : 2;
    uint32_t pre = cl_tw_rng_below(g, 100);
    const char *prefix = pre < 50 ? "" : prefixes[pre < 65 ? 0 : pre < 80 ? 1 : pre < 90 ? 2 : 3];
    int bg_first = bg_mentioned && !count_only && s->n > 0 && !*prefix && chance(g, 15);

    if (bg_mentioned) m.background = s->background;
    if (s->n == 0) {
        sb_article(&b, background_adjectives[s->background]);
        sb_add(&b, background_adjectives[s->background]);
        sb_add(&b, " background");
        if (mentioned) *mentioned = m;
        return sb_end(&b);
    }
    if (count_only) {
        if (!strcmp(prefix, "there is ")) prefix = s->n > 1 ? "there are " : "there is ";
        sb_add(&b, prefix);
        sb_add(&b, count_words[s->n]);
        sb_add(&b, s->n > 1 ? " objects" : " object");
        for (int k = 0; k < s->n; k++) cl_tw_scene_add(&m);
        if (bg_mentioned) background_suffix(&b, s->background, bg_form);
        if (mentioned) *mentioned = m;
        return sb_end(&b);
    }
    sb_add(&b, prefix);
    if (bg_first) {
        sb_article(&b, background_adjectives[s->background]);
        sb_add(&b, background_adjectives[s->background]);
        sb_add(&b, " background with ");
    }
    for (int k = 0; k < s->n; k++) {
        const struct cl_tw_object *o = &s->obj[k];
        struct cl_tw_object *mo = cl_tw_scene_add(&m);
        if (full || chance(g, 45)) mo->size = o->size;
        if (full || chance(g, 80)) mo->colour = o->colour;
        if (full || chance(g, 75)) mo->shape = o->shape;
        if (full || chance(g, 55)) mo->position = o->position;
        int noun_shape = chance(g, 30), alt = !full && chance(g, 25);
        join_sep(&b, k, s->n);
        object_phrase(&b, mo->size, mo->colour, mo->shape, mo->position, noun_shape, alt);
    }
    if (bg_mentioned && !bg_first) background_suffix(&b, s->background, bg_form);
    if (mentioned) *mentioned = m;
    return sb_end(&b);
}

/* ------------------------------------------------------------------------ */
/* Captions: parsing                                                         */
/* ------------------------------------------------------------------------ */

enum wkind { W_FILL, W_SEP, W_OBJ, W_SHAPE, W_COLOUR, W_SIZE, W_BG, W_ROW, W_COL, W_MID, W_COUNT };
struct word { const char *w; unsigned char kind; signed char value; };

static const struct word lexicon[] = {
    {"a", W_FILL, 0}, {"an", W_FILL, 0}, {"the", W_FILL, 0}, {"of", W_FILL, 0},
    {"on", W_FILL, 0}, {"in", W_FILL, 0}, {"at", W_FILL, 0}, {"near", W_FILL, 0},
    {"photo", W_FILL, 0}, {"picture", W_FILL, 0}, {"image", W_FILL, 0},
    {"drawing", W_FILL, 0}, {"scene", W_FILL, 0}, {"there", W_FILL, 0},
    {"is", W_FILL, 0}, {"are", W_FILL, 0}, {"background", W_FILL, 0},
    {"backdrop", W_FILL, 0}, {"corner", W_FILL, 0}, {"side", W_FILL, 0},
    {"colour", W_FILL, 0}, {"color", W_FILL, 0},
    {"and", W_SEP, 0}, {"with", W_SEP, 0},
    {"object", W_OBJ, 0}, {"objects", W_OBJ, 0}, {"shape", W_OBJ, 0},
    {"shapes", W_OBJ, 0}, {"thing", W_OBJ, 0}, {"things", W_OBJ, 0},
    {"something", W_OBJ, 0},
    {"circle", W_SHAPE, CL_TW_CIRCLE}, {"circles", W_SHAPE, CL_TW_CIRCLE},
    {"square", W_SHAPE, CL_TW_SQUARE}, {"squares", W_SHAPE, CL_TW_SQUARE},
    {"triangle", W_SHAPE, CL_TW_TRIANGLE}, {"triangles", W_SHAPE, CL_TW_TRIANGLE},
    {"star", W_SHAPE, CL_TW_STAR}, {"stars", W_SHAPE, CL_TW_STAR},
    {"cross", W_SHAPE, CL_TW_CROSS}, {"crosses", W_SHAPE, CL_TW_CROSS},
    {"plus", W_SHAPE, CL_TW_CROSS},
    {"ring", W_SHAPE, CL_TW_RING}, {"rings", W_SHAPE, CL_TW_RING},
    {"donut", W_SHAPE, CL_TW_RING},
    {"heart", W_SHAPE, CL_TW_HEART}, {"hearts", W_SHAPE, CL_TW_HEART},
    {"diamond", W_SHAPE, CL_TW_DIAMOND}, {"diamonds", W_SHAPE, CL_TW_DIAMOND},
    {"rhombus", W_SHAPE, CL_TW_DIAMOND},
    {"red", W_COLOUR, CL_TW_RED}, {"orange", W_COLOUR, CL_TW_ORANGE},
    {"yellow", W_COLOUR, CL_TW_YELLOW}, {"green", W_COLOUR, CL_TW_GREEN},
    {"cyan", W_COLOUR, CL_TW_CYAN}, {"blue", W_COLOUR, CL_TW_BLUE},
    {"purple", W_COLOUR, CL_TW_PURPLE}, {"violet", W_COLOUR, CL_TW_PURPLE},
    {"pink", W_COLOUR, CL_TW_PINK}, {"brown", W_COLOUR, CL_TW_BROWN},
    {"white", W_COLOUR, CL_TW_WHITE}, {"black", W_COLOUR, CL_TW_BLACK},
    {"grey", W_COLOUR, CL_TW_GREY}, {"gray", W_COLOUR, CL_TW_GREY},
    {"small", W_SIZE, CL_TW_SMALL}, {"little", W_SIZE, CL_TW_SMALL},
    {"tiny", W_SIZE, CL_TW_SMALL}, {"large", W_SIZE, CL_TW_LARGE},
    {"big", W_SIZE, CL_TW_LARGE}, {"huge", W_SIZE, CL_TW_LARGE},
    {"plain", W_BG, CL_TW_PLAIN},
    {"stripes", W_BG, CL_TW_STRIPES}, {"striped", W_BG, CL_TW_STRIPES},
    {"stripe", W_BG, CL_TW_STRIPES}, {"stripy", W_BG, CL_TW_STRIPES},
    {"dots", W_BG, CL_TW_DOTS}, {"dotted", W_BG, CL_TW_DOTS}, {"dot", W_BG, CL_TW_DOTS},
    {"polka", W_BG, CL_TW_DOTS}, {"spots", W_BG, CL_TW_DOTS}, {"spotted", W_BG, CL_TW_DOTS},
    {"checker", W_BG, CL_TW_CHECKER}, {"checkered", W_BG, CL_TW_CHECKER},
    {"checkerboard", W_BG, CL_TW_CHECKER}, {"chequered", W_BG, CL_TW_CHECKER},
    {"checkers", W_BG, CL_TW_CHECKER}, {"checked", W_BG, CL_TW_CHECKER},
    {"water", W_BG, CL_TW_WATER}, {"sea", W_BG, CL_TW_WATER},
    {"ocean", W_BG, CL_TW_WATER}, {"lake", W_BG, CL_TW_WATER},
    {"grass", W_BG, CL_TW_GRASS}, {"grassy", W_BG, CL_TW_GRASS},
    {"lawn", W_BG, CL_TW_GRASS},
    {"sand", W_BG, CL_TW_SAND}, {"sandy", W_BG, CL_TW_SAND},
    {"sky", W_BG, CL_TW_SKY},
    {"brick", W_BG, CL_TW_BRICK}, {"bricks", W_BG, CL_TW_BRICK},
    {"wood", W_BG, CL_TW_WOOD}, {"wooden", W_BG, CL_TW_WOOD},
    {"planks", W_BG, CL_TW_WOOD},
    {"top", W_ROW, 0}, {"upper", W_ROW, 0}, {"bottom", W_ROW, 2}, {"lower", W_ROW, 2},
    {"left", W_COL, 0}, {"right", W_COL, 2},
    {"center", W_MID, 1}, {"centre", W_MID, 1}, {"middle", W_MID, 1},
    {"single", W_COUNT, 1}, {"one", W_COUNT, 1}, {"two", W_COUNT, 2},
    {"three", W_COUNT, 3}, {"four", W_COUNT, 4}, {"five", W_COUNT, 5},
    {"six", W_COUNT, 6}, {"seven", W_COUNT, 7}, {"eight", W_COUNT, 8},
    {"nine", W_COUNT, 9},
};

static const struct word *lookup(const char *w)
{
    for (size_t i = 0; i < sizeof lexicon / sizeof lexicon[0]; i++)
        if (!strcmp(lexicon[i].w, w)) return &lexicon[i];
    return NULL;
}

/* One object phrase being read. */
struct segment {
    int shape, colour, size, row, col, mid, count;
    int any;   /* named an object (noun, attribute or count) */
};

static void segment_reset(struct segment *g)
{
    g->shape = g->colour = g->size = g->row = g->col = g->count = -1;
    g->mid = 0;
    g->any = 0;
}

/* Put the attribute value into *slot, failing when it already holds another. */
static enum cl_status set_once(int *slot, int value, const char *what,
                               const char *const *names, struct cl_err *e)
{
    if (*slot >= 0 && *slot != value)
        return cl_errf(e, CL_ERR_DATA, "two %s ('%s' and '%s') for one object in caption",
                       what, names[*slot], names[value]);
    *slot = value;
    return CL_OK;
}

static enum cl_status segment_flush(struct segment *g, struct cl_tw_scene *s, struct cl_err *e)
{
    if (!g->any) { segment_reset(g); return CL_OK; }
    int count = g->count > 0 ? g->count : 1;
    int position = -1;
    if (g->row >= 0 || g->col >= 0 || g->mid)
        position = (g->row >= 0 ? g->row : 1) * 3 + (g->col >= 0 ? g->col : 1);
    if (position >= 0 && count > 1)
        return cl_errf(e, CL_ERR_DATA, "%d objects cannot share one position (%s) in caption",
                       count, cl_tw_position_names[position]);
    for (int i = 0; i < count; i++) {
        struct cl_tw_object *o = cl_tw_scene_add(s);
        if (!o)
            return cl_errf(e, CL_ERR_DATA, "too many objects in caption (at most %d)",
                           CL_TW_MAX_OBJECTS);
        o->shape = g->shape;
        o->colour = g->colour;
        o->size = g->size;
        o->position = position;
    }
    segment_reset(g);
    return CL_OK;
}

static enum cl_status unknown_word(const char *w, struct cl_err *e)
{
    char shown[160];
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)w; *p && n + 5 < sizeof shown; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\'') shown[n++] = (char)*p;
        else n += (size_t)snprintf(shown + n, sizeof shown - n, "\\x%02x", *p);
    }
    shown[n] = '\0';
    return cl_errf(e, CL_ERR_DATA, "unknown word '%s' in caption", shown);
}

static enum cl_status parse_word(const char *w, struct segment *g, struct cl_tw_scene *s,
                                 struct cl_err *e)
{
    static const char *const rows[3] = {"top", "middle", "bottom"};
    static const char *const cols[3] = {"left", "center", "right"};
    const struct word *d = lookup(w);
    enum cl_status st = CL_OK;
    if (!d) return unknown_word(w, e);
    switch (d->kind) {
    case W_FILL: break;
    case W_SEP: return segment_flush(g, s, e);
    case W_OBJ: g->any = 1; break;
    case W_SHAPE: g->any = 1; st = set_once(&g->shape, d->value, "shapes", cl_tw_shape_names, e); break;
    case W_COLOUR: g->any = 1; st = set_once(&g->colour, d->value, "colours", cl_tw_colour_names, e); break;
    case W_SIZE: g->any = 1; st = set_once(&g->size, d->value, "sizes", cl_tw_size_names, e); break;
    case W_ROW: g->any = 1; st = set_once(&g->row, d->value, "vertical positions", rows, e); break;
    case W_COL: g->any = 1; st = set_once(&g->col, d->value, "horizontal positions", cols, e); break;
    case W_MID: g->any = 1; g->mid = 1; break;
    case W_COUNT: g->any = 1; st = set_once(&g->count, d->value, "counts", count_words, e); break;
    case W_BG:
        if (s->background >= 0 && s->background != d->value)
            return cl_errf(e, CL_ERR_DATA, "two backgrounds ('%s' and '%s') in caption",
                           cl_tw_background_names[s->background], cl_tw_background_names[d->value]);
        s->background = d->value;
        break;
    }
    return st;
}

enum cl_status cl_tw_parse(const char *caption, struct cl_tw_scene *s, struct cl_err *e)
{
    struct segment g;
    char w[64];
    size_t n = 0;
    int words = 0;
    enum cl_status st;
    segment_reset(&g);
    for (const char *p = caption;; p++) {
        unsigned char c = (unsigned char)*p;
        int sep = c == ',' || c == ';';
        int space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '.' || c == '-' || c == '\0';
        if (sep || space) {
            if (n) {
                w[n] = '\0';
                if ((st = parse_word(w, &g, s, e)) != CL_OK) return st;
                n = 0;
                words++;
            }
            if (sep && (st = segment_flush(&g, s, e)) != CL_OK) return st;
            if (!c) break;
            continue;
        }
        if (n + 1 >= sizeof w) { /* longer than any known word */
            w[n] = '\0';
            return unknown_word(w, e);
        }
        w[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    if ((st = segment_flush(&g, s, e)) != CL_OK) return st;
    if (!words) return cl_errf(e, CL_ERR_DATA, "empty caption");
    if (s->n == 0 && s->background < 0)
        return cl_errf(e, CL_ERR_DATA, "caption names no object and no background");
    return CL_OK;
}

/* ------------------------------------------------------------------------ */
/* Data sets                                                                 */
/* ------------------------------------------------------------------------ */

void cl_tw_config_init(struct cl_tw_config *c)
{
    c->size = CL_TW_DEFAULT_SIZE;
    c->split = CL_TW_SPLIT_RANDOM;
    c->seed = 0;
    c->min_objects = 1;
    c->max_objects = 3;
    c->bias = 0.95;
}

int cl_tw_num_labels(enum cl_tw_split split)
{
    return split == CL_TW_SPLIT_SPURIOUS_TRAIN || split == CL_TW_SPLIT_SPURIOUS_TEST
               ? CL_TW_NCLASSES : CL_TW_NSHAPES;
}

int cl_tw_num_groups(enum cl_tw_split split)
{
    return split == CL_TW_SPLIT_SPURIOUS_TRAIN || split == CL_TW_SPLIT_SPURIOUS_TEST
               ? 2 * CL_TW_NCLASSES : CL_TW_NBACKGROUNDS;
}

void cl_tw_label_name(enum cl_tw_split split, int label, char *buf, size_t cap)
{
    int spurious = cl_tw_num_labels(split) == CL_TW_NCLASSES;
    int shape = spurious ? cl_tw_spurious_shape[label] : label;
    snprintf(buf, cap, "%s", cl_tw_shape_names[shape]);
}

void cl_tw_group_name(enum cl_tw_split split, int group, char *buf, size_t cap)
{
    if (cl_tw_num_groups(split) == 2 * CL_TW_NCLASSES)
        snprintf(buf, cap, "%s/%s", cl_tw_shape_names[cl_tw_spurious_shape[group / 2]],
                 cl_tw_bgtype_names[group % 2]);
    else
        snprintf(buf, cap, "%s", cl_tw_background_names[group]);
}

/* Colours that fail to stand out on some background of either type. */
static uint32_t spurious_colour_exclusions(void)
{
    struct cl_tw_scene t;
    uint32_t mask = 0;
    cl_tw_scene_init(&t, CL_TW_DEFAULT_SIZE);
    for (int type = 0; type < CL_TW_NCLASSES; type++)
        for (int j = 0; j < 2; j++) {
            t.background = cl_tw_bgtype_members[type][j];
            for (int c = 0; c < CL_TW_NCOLOURS; c++)
                if (!cl_tw_colour_ok(&t, c)) mask |= 1u << c;
        }
    return mask;
}

/* Element `pos` of a seeded permutation of 0..n-1 (n <= 256), one per block. */
static int block_permutation(uint64_t seed, int split, uint64_t block, int n, int pos)
{
    int perm[256];
    struct cl_tw_rng g;
    item_rng(&g, seed ^ 0x5EEDB10Cull, split, block);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)cl_tw_rng_below(&g, (uint32_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    return perm[pos];
}

enum cl_status cl_tw_sample_item(const struct cl_tw_config *c, uint64_t index,
                                 struct cl_tw_item *it, struct cl_err *e)
{
    struct cl_tw_rng g;
    struct cl_tw_scene *s = &it->scene;
    enum cl_status st;
    if (c->min_objects < 1 || c->max_objects < c->min_objects || c->max_objects > CL_TW_MAX_OBJECTS)
        return cl_errf(e, CL_ERR_USAGE, "objects per scene %d-%d out of range (expected 1-%d)",
                       c->min_objects, c->max_objects, CL_TW_MAX_OBJECTS);
    if ((unsigned)c->split >= CL_TW_NSPLITS)
        return cl_errf(e, CL_ERR_USAGE, "unknown split %d", (int)c->split);
    item_rng(&g, c->seed, (int)c->split, index);
    cl_tw_scene_init(s, c->size);
    int n = c->min_objects + (int)cl_tw_rng_below(&g, (uint32_t)(c->max_objects - c->min_objects + 1));
    for (int k = 0; k < n; k++) cl_tw_scene_add(s);
    int cls = 0, bgtype = 0;
    switch (c->split) {
    case CL_TW_SPLIT_RANDOM:
        break;
    case CL_TW_SPLIT_BALANCED: {
        int nb = CL_TW_NSHAPES * CL_TW_NBACKGROUNDS;
        int combo = block_permutation(c->seed, (int)c->split, index / (uint64_t)nb, nb,
                                      (int)(index % (uint64_t)nb));
        s->obj[0].shape = combo % CL_TW_NSHAPES;
        s->background = combo / CL_TW_NSHAPES;
        break;
    }
    case CL_TW_SPLIT_SPURIOUS_TRAIN: {
        cls = (int)cl_tw_rng_below(&g, 2);
        /* P(type == class) = bias, drawn at 2^-53 resolution */
        uint64_t thresh = (uint64_t)(c->bias * 9007199254740992.0);
        bgtype = (cl_tw_rng_next(&g) >> 11) < thresh ? cls : 1 - cls;
        break;
    }
    case CL_TW_SPLIT_SPURIOUS_TEST: {
        int grp = block_permutation(c->seed, (int)c->split, index / 4, 4, (int)(index % 4));
        cls = grp / 2;
        bgtype = grp % 2;
        break;
    }
    default: break;
    }
    if (c->split == CL_TW_SPLIT_SPURIOUS_TRAIN || c->split == CL_TW_SPLIT_SPURIOUS_TEST) {
        s->obj[0].shape = cl_tw_spurious_shape[cls];
        s->background = cl_tw_bgtype_members[bgtype][cl_tw_rng_below(&g, 2)];
        /* other objects never show either class, and colours are those that
         * stand out on all four backgrounds, so colour says nothing of the type */
        for (int i = 0; i < CL_TW_NCLASSES; i++) s->exclude_shapes |= 1u << cl_tw_spurious_shape[i];
        s->exclude_colours = spurious_colour_exclusions();
    }
    if ((st = cl_tw_complete(s, &g, e)) != CL_OK) return st;
    if (c->split == CL_TW_SPLIT_SPURIOUS_TRAIN || c->split == CL_TW_SPLIT_SPURIOUS_TEST) {
        it->label = cls;
        it->group = cls * 2 + bgtype;
    } else {
        it->label = s->obj[0].shape;
        it->group = s->background;
    }
    if (cl_tw_caption(s, &g, NULL, it->caption, sizeof it->caption) < 0 ||
        cl_tw_caption_full(s, it->caption_full, sizeof it->caption_full) < 0)
        return cl_errf(e, CL_ERR_DATA, "item %llu: caption longer than %d bytes",
                       (unsigned long long)index, CL_TW_CAPTION_MAX);
    return CL_OK;
}

enum cl_status cl_tw_item_from_caption(const struct cl_tw_config *c, uint64_t index,
                                       const char *caption, struct cl_tw_item *it,
                                       struct cl_err *e)
{
    struct cl_tw_rng g;
    struct cl_tw_scene *s = &it->scene;
    enum cl_status st;
    size_t len = strlen(caption);
    if (len >= sizeof it->caption)
        return cl_errf(e, CL_ERR_DATA, "caption of %zu bytes (at most %d)", len, CL_TW_CAPTION_MAX - 1);
    cl_tw_scene_init(s, c->size);
    if ((st = cl_tw_parse(caption, s, e)) != CL_OK) return st;
    item_rng(&g, c->seed, (int)c->split, index);
    if ((st = cl_tw_complete(s, &g, e)) != CL_OK) return st;
    memcpy(it->caption, caption, len + 1);
    it->label = s->n ? s->obj[0].shape : -1;
    it->group = s->background;
    if (cl_tw_caption_full(s, it->caption_full, sizeof it->caption_full) < 0)
        return cl_errf(e, CL_ERR_DATA, "caption longer than %d bytes", CL_TW_CAPTION_MAX);
    return CL_OK;
}

/* ------------------------------------------------------------------------ */
/* Text pools                                                                */
/* ------------------------------------------------------------------------ */

static const char *const distractors[] = {
    "a photo of a dog", "a photo of a cat", "a blurry image", "a happy face", "a sad face",
    "a car on a road", "a cup of coffee", "a mountain landscape", "a pixelated picture",
    "a low resolution photo", "a painting", "a sketch", "a cartoon", "a bird", "a fish",
    "a horse", "a tree", "a flower", "a house", "a city street at night", "a person smiling",
    "a portrait of a woman", "a portrait of a man", "a bowl of fruit", "an airplane",
    "a bicycle", "a boat", "a train", "a clock", "a book", "a computer", "a chair", "a table",
    "text", "a handwritten note", "a map", "a logo", "a photo taken outdoors",
    "a photo taken indoors", "a dark photo", "a bright photo", "a noisy image",
    "a sharp photo", "an old photograph", "a close-up photo", "a wide angle shot", "a selfie",
    "a crowd of people", "a sunset", "a forest", "a desert", "a snowy mountain",
    "a rainy day", "food", "a sandwich", "a pizza", "a shoe", "a hat", "a guitar", "a piano",
    "a baby", "a robot", "an insect", "a butterfly", "a window", "a door", "a key",
    "a bottle", "a lamp", "a phone", "music", "a letter", "a number", "a smile",
    "a drawing by a child", "an abstract painting", "a screenshot", "a diagram",
    "a spider web", "a birthday cake"};

struct pool_out { struct cl_tw_phrase *out; size_t cap, n; };

static void pool_add(struct pool_out *p, int family, const char *a, const char *b, const char *c)
{
    if (p->out && p->n < p->cap) {
        struct cl_tw_phrase *ph = &p->out[p->n];
        ph->family = family;
        snprintf(ph->text, sizeof ph->text, "%s%s%s", a, b ? b : "", c ? c : "");
    }
    p->n++;
}

static const char *article(const char *w) { return starts_with_vowel(w) ? "an " : "a "; }

size_t cl_tw_pool(int attributes, int with_distractors, struct cl_tw_phrase *out, size_t cap)
{
    struct pool_out p = {out, cap, 0};
    if (attributes) {
        for (int i = 0; i < CL_TW_NCOLOURS; i++) {
            const char *c = cl_tw_colour_names[i];
            char an[32];
            snprintf(an, sizeof an, "%s%s", article(c), c);
            pool_add(&p, CL_TW_FAM_COLOUR, an, " object", NULL);
            pool_add(&p, CL_TW_FAM_COLOUR, an, " shape", NULL);
            pool_add(&p, CL_TW_FAM_COLOUR, an, " thing", NULL);
            pool_add(&p, CL_TW_FAM_COLOUR, "something ", c, NULL);
            pool_add(&p, CL_TW_FAM_COLOUR, c, NULL, NULL);
            pool_add(&p, CL_TW_FAM_COLOUR, "the colour ", c, NULL);
            pool_add(&p, CL_TW_FAM_COLOUR, "an image of something ", c, NULL);
        }
        for (int i = 0; i < CL_TW_NSHAPES; i++) {
            const char *s = cl_tw_shape_names[i];
            pool_add(&p, CL_TW_FAM_SHAPE, article(s), s, NULL);
            pool_add(&p, CL_TW_FAM_SHAPE, article(s), s, " shape");
            pool_add(&p, CL_TW_FAM_SHAPE, "an image of ", article(s), s);
            pool_add(&p, CL_TW_FAM_SHAPE, "a photo of ", article(s), s);
            pool_add(&p, CL_TW_FAM_SHAPE, s, NULL, NULL);
            pool_add(&p, CL_TW_FAM_SHAPE, shape_plurals[i], NULL, NULL);
        }
        static const char *const size_synonyms[CL_TW_NSIZES][2] = {{"tiny", "little"}, {"big", "huge"}};
        for (int i = 0; i < CL_TW_NSIZES; i++) {
            const char *z = cl_tw_size_names[i];
            pool_add(&p, CL_TW_FAM_SIZE, "a ", z, " object");
            pool_add(&p, CL_TW_FAM_SIZE, "a ", z, " shape");
            pool_add(&p, CL_TW_FAM_SIZE, "something ", z, NULL);
            pool_add(&p, CL_TW_FAM_SIZE, z, NULL, NULL);
            pool_add(&p, CL_TW_FAM_SIZE, "a ", size_synonyms[i][0], " object");
            pool_add(&p, CL_TW_FAM_SIZE, "a ", size_synonyms[i][1], " thing");
        }
        for (int i = 0; i < CL_TW_NPOSITIONS; i++) {
            pool_add(&p, CL_TW_FAM_POSITION, "an object ", cl_tw_position_phrases[i], NULL);
            pool_add(&p, CL_TW_FAM_POSITION, "something ", cl_tw_position_phrases[i], NULL);
            pool_add(&p, CL_TW_FAM_POSITION, "a shape ", cl_tw_position_phrases[i], NULL);
            pool_add(&p, CL_TW_FAM_POSITION, "an object ", position_alt_phrases[i], NULL);
            pool_add(&p, CL_TW_FAM_POSITION, position_bare[i], NULL, NULL);
        }
        for (int i = 0; i < CL_TW_NBACKGROUNDS; i++) {
            const char *a = background_adjectives[i];
            char an[48];
            snprintf(an, sizeof an, "%s%s background", article(a), a);
            pool_add(&p, CL_TW_FAM_BACKGROUND, "an image with ", an, NULL);
            pool_add(&p, CL_TW_FAM_BACKGROUND, an, NULL, NULL);
            pool_add(&p, CL_TW_FAM_BACKGROUND, "something on ", an, NULL);
            pool_add(&p, CL_TW_FAM_BACKGROUND, "a photo with ", an, NULL);
            pool_add(&p, CL_TW_FAM_BACKGROUND, "an object ",
                     background_places[i] ? background_places[i] : "on a plain background", NULL);
            pool_add(&p, CL_TW_FAM_BACKGROUND, cl_tw_background_names[i], NULL, NULL);
        }
        static const char *const counts[] = {
            "one object", "a single object", "a single shape", "two objects", "two shapes",
            "three objects", "three shapes", "an image of one object", "an image of two objects",
            "an image of three objects"};
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
            pool_add(&p, CL_TW_FAM_COUNT, counts[i], NULL, NULL);
    }
    if (with_distractors)
        for (size_t i = 0; i < sizeof distractors / sizeof distractors[0]; i++)
            pool_add(&p, CL_TW_FAM_DISTRACTOR, distractors[i], NULL, NULL);
    return p.n;
}
