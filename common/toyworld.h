/* toyworld.h - the synthetic toy world: a vocabulary of object attributes,
 * seeded scene sampling, captions (generated and parsed), and an exact,
 * integer-only antialiased rasteriser with per-object coverage masks.
 *
 * A scene is S x S pixels (default 64) holding 0..9 objects, each with a shape,
 * colour, size and one of nine grid positions, on a procedurally textured
 * background.  Objects stay inside their own grid cell, so they never overlap
 * and never leave the image; every object's colour is chosen to stand out from
 * the background's palette.
 *
 * Determinism: everything that reaches a pixel is integer arithmetic (no libm,
 * no floating point), sampling uses our own PRNG (xoshiro256** seeded by
 * splitmix64), and item i of a data set depends only on (seed, split, i).  The
 * same seed gives the same bytes on every platform and for any thread count.
 *
 * Geometry: coordinates are "units" of 1/64 pixel.  Each pixel is sampled at a
 * 4x4 grid of points (x*64 + 8 + 16*j); coverage is the count of points inside,
 * 0..16, exact for the shape's integer description.  Masks hold coverage scaled
 * to 0..255 (255 = fully inside; threshold at 128 for a binary mask).
 *
 * Usage:
 *   struct cl_tw_scene spec; cl_tw_scene_init(&spec, 64);
 *   cl_tw_parse("a large red star at the top left on water", &spec, &e);
 *   struct cl_tw_rng g; cl_tw_rng_seed(&g, seed);
 *   cl_tw_complete(&spec, &g, &e);                      // sample what is unspecified
 *   cl_tw_render(&spec, rgb, masks);                    // rgb [S,S,3], masks [n,S,S]
 * or, for data sets:
 *   struct cl_tw_config c = ...; struct cl_tw_item it;
 *   cl_tw_sample_item(&c, index, &it, &e);              // scene, label, group, captions
 */
#ifndef CL_TOYWORLD_H
#define CL_TOYWORLD_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* ---- vocabulary ---- */
enum cl_tw_shape {
    CL_TW_CIRCLE, CL_TW_SQUARE, CL_TW_TRIANGLE, CL_TW_STAR,
    CL_TW_CROSS, CL_TW_RING, CL_TW_HEART, CL_TW_DIAMOND, CL_TW_NSHAPES
};
enum cl_tw_colour {
    CL_TW_RED, CL_TW_ORANGE, CL_TW_YELLOW, CL_TW_GREEN, CL_TW_CYAN, CL_TW_BLUE,
    CL_TW_PURPLE, CL_TW_PINK, CL_TW_BROWN, CL_TW_WHITE, CL_TW_BLACK, CL_TW_GREY,
    CL_TW_NCOLOURS
};
enum cl_tw_size { CL_TW_SMALL, CL_TW_LARGE, CL_TW_NSIZES };
/* Grid cells in reading order: index = row * 3 + column. */
enum cl_tw_position {
    CL_TW_TOP_LEFT, CL_TW_TOP, CL_TW_TOP_RIGHT, CL_TW_LEFT, CL_TW_CENTER, CL_TW_RIGHT,
    CL_TW_BOTTOM_LEFT, CL_TW_BOTTOM, CL_TW_BOTTOM_RIGHT, CL_TW_NPOSITIONS
};
enum cl_tw_background {
    CL_TW_PLAIN, CL_TW_STRIPES, CL_TW_DOTS, CL_TW_CHECKER, CL_TW_WATER,
    CL_TW_GRASS, CL_TW_SAND, CL_TW_SKY, CL_TW_BRICK, CL_TW_WOOD, CL_TW_NBACKGROUNDS
};

/* Canonical names (single tokens, as in manifests and stream meta):
 * shapes "circle".."diamond"; colours "red".."grey"; sizes "small", "large";
 * positions "top-left", "top", ..., "bottom-right"; backgrounds "plain".."wood". */
extern const char *const cl_tw_shape_names[CL_TW_NSHAPES];
extern const char *const cl_tw_colour_names[CL_TW_NCOLOURS];
extern const char *const cl_tw_size_names[CL_TW_NSIZES];
extern const char *const cl_tw_position_names[CL_TW_NPOSITIONS];
extern const char *const cl_tw_background_names[CL_TW_NBACKGROUNDS];
/* Natural phrases: "at the top left", ..., "in the center", ... */
extern const char *const cl_tw_position_phrases[CL_TW_NPOSITIONS];
/* Nominal RGB of each colour (objects get a small seeded jitter around it). */
extern const uint8_t cl_tw_colour_rgb[CL_TW_NCOLOURS][3];

/* ---- the spurious split: two target shapes and two background families ---- */
#define CL_TW_NCLASSES 2
extern const int cl_tw_spurious_shape[CL_TW_NCLASSES];       /* triangle, square */
extern const char *const cl_tw_bgtype_names[CL_TW_NCLASSES]; /* "water", "land" */
extern const int cl_tw_bgtype_members[CL_TW_NCLASSES][2];    /* {water, sky}, {grass, sand} */
/* Background-type index of a background (0 water-like, 1 land-like), -1 for neither. */
int cl_tw_bgtype(int background);

/* ---- limits ---- */
#define CL_TW_MAX_OBJECTS 9      /* one per grid cell */
#define CL_TW_MIN_SIZE 16        /* image side bounds */
#define CL_TW_MAX_SIZE 1024
#define CL_TW_DEFAULT_SIZE 64
#define CL_TW_CAPTION_MAX 1024   /* bytes, including the NUL */

/* ---- random numbers (xoshiro256**, seeded by splitmix64) ---- */
struct cl_tw_rng { uint64_t s[4]; };
void cl_tw_rng_seed(struct cl_tw_rng *g, uint64_t seed);
uint64_t cl_tw_rng_next(struct cl_tw_rng *g);
uint32_t cl_tw_rng_below(struct cl_tw_rng *g, uint32_t n); /* uniform in [0, n), n >= 1 */

/* ---- scenes ----
 * The same struct is a specification (attributes may be -1: "unspecified")
 * and, after cl_tw_complete, a fully determined scene. */
struct cl_tw_object {
    int shape, colour, size, position;  /* vocabulary indices, or -1 in a spec */
    /* set by cl_tw_complete: */
    uint8_t rgb[3];                     /* the object's colour (jittered) */
    int32_t cx, cy;                     /* centre, units (1/64 pixel) */
    int32_t r;                          /* half the side of its bounding box, units */
};

struct cl_tw_scene {
    int size;                            /* S: the image is S x S */
    int n;                               /* objects in use */
    struct cl_tw_object obj[CL_TW_MAX_OBJECTS];
    int background;                      /* enum cl_tw_background, or -1 in a spec */
    uint32_t exclude_shapes;             /* spec: bit i set = never sample shape i */
    uint32_t exclude_colours;            /* spec: bit i set = never sample colour i */
    /* set by cl_tw_complete: */
    int bg_colour[2];                    /* pattern palette entries (plain, stripes, dots, checker) */
    uint32_t texture_seed;               /* drives the background's procedural texture */
};

/* An empty spec: no objects, background unspecified. */
void cl_tw_scene_init(struct cl_tw_scene *s, int size);

/* Append an object with every attribute unspecified; returns it, or NULL when full. */
struct cl_tw_object *cl_tw_scene_add(struct cl_tw_scene *s);

/* Fill every unspecified attribute from g and lay out the scene.  Fails with
 * CL_ERR_DATA when the spec cannot be met (two objects in one cell, an
 * explicitly named colour that would not stand out on an explicitly named
 * background, bad size). */
enum cl_status cl_tw_complete(struct cl_tw_scene *s, struct cl_tw_rng *g, struct cl_err *e);

/* Whether a colour stands out from a background's palette (for a pattern
 * background, from the palette entries in s->bg_colour). */
int cl_tw_colour_ok(const struct cl_tw_scene *s, int colour);

/* Render a completed scene.  rgb: [S,S,3] interleaved, rows top first.
 * masks: [n,S,S] coverage 0..255 per object, or NULL.  No allocation. */
void cl_tw_render(const struct cl_tw_scene *s, uint8_t *rgb, uint8_t *masks);

/* Pixel bounding box of object k: x0 <= x < x1, y0 <= y < y1. */
void cl_tw_object_box(const struct cl_tw_scene *s, int k, int box[4]);

/* ---- captions ---- */
/* Every attribute of every object and the background, canonical phrasing:
 * "a large red star at the top left and a small blue ring in the center on a
 * water background".  Returns the length, or -1 if cap is too small. */
int cl_tw_caption_full(const struct cl_tw_scene *s, char *buf, size_t cap);

/* A varied caption: random prefix, a random subset of attributes per object
 * (some captions name everything, some only a few, some omit the background,
 * a few only count the objects), alternative phrasings.  If mentioned is not
 * NULL it receives a spec of exactly what the caption says (what
 * cl_tw_parse(buf) returns).  Returns the length, or -1 if cap is too small. */
int cl_tw_caption(const struct cl_tw_scene *s, struct cl_tw_rng *g,
                  struct cl_tw_scene *mentioned, char *buf, size_t cap);

/* Parse a caption into a spec (s must be initialised; its size is kept).
 * Words are matched case-insensitively; ',', '.', '-' separate words.
 * Object phrases are separated by "and", "with" and commas; a phrase names at
 * most one of each attribute; "two red stars" makes two objects.  Every word
 * must be known: otherwise CL_ERR_DATA "unknown word 'foo' in caption". */
enum cl_status cl_tw_parse(const char *caption, struct cl_tw_scene *s, struct cl_err *e);

/* ---- data sets ---- */
enum cl_tw_split { CL_TW_SPLIT_RANDOM, CL_TW_SPLIT_BALANCED, CL_TW_SPLIT_SPURIOUS_TRAIN,
                   CL_TW_SPLIT_SPURIOUS_TEST, CL_TW_NSPLITS };
extern const char *const cl_tw_split_names[CL_TW_NSPLITS]; /* "random", "balanced", ... */

struct cl_tw_config {
    int size;                      /* S */
    enum cl_tw_split split;
    uint64_t seed;
    int min_objects, max_objects;  /* 1 <= min <= max <= 9 */
    double bias;                   /* spurious-train: P(background type == class), default 0.95 */
};
void cl_tw_config_init(struct cl_tw_config *c); /* 64 px, random split, seed 0, 1-3 objects */

/* Labels per split (object 0 is the labelled one):
 *   random, balanced:  label = shape of object 0, group = background
 *                      (balanced: every (shape, background) pair once per block
 *                       of 8 x 10 items, in a seeded order)
 *   spurious-train/test: label = class (0 triangle, 1 square),
 *                      group = label * 2 + background type (0 water/sky, 1 grass/sand);
 *                      train: type == class with probability bias;
 *                      test: the four groups equally often (each block of 4);
 *                      objects other than object 0 are neither class, and colours
 *                      are limited to those that stand out on all four backgrounds. */
int cl_tw_num_labels(enum cl_tw_split split);
int cl_tw_num_groups(enum cl_tw_split split);
/* Names for label and group values ("triangle", "triangle/water", "star", "water"). */
void cl_tw_label_name(enum cl_tw_split split, int label, char *buf, size_t cap);
void cl_tw_group_name(enum cl_tw_split split, int group, char *buf, size_t cap);

struct cl_tw_item {
    struct cl_tw_scene scene;
    int label, group;
    char caption[CL_TW_CAPTION_MAX];      /* varied */
    char caption_full[CL_TW_CAPTION_MAX]; /* every attribute */
};

/* Sample item `index` of the data set described by c. */
enum cl_status cl_tw_sample_item(const struct cl_tw_config *c, uint64_t index,
                                 struct cl_tw_item *it, struct cl_err *e);

/* Item `index` rendered from a caption instead of sampled: the caption's
 * unnamed attributes are drawn from the item's PRNG (seed, c->split, index),
 * label = shape of object 0 (-1 with no object), group = background.
 * it->caption is the caption as given; it->caption_full names everything.
 * Errors (CL_ERR_DATA): unknown words, contradictions, a caption longer than
 * CL_TW_CAPTION_MAX - 1 bytes. */
enum cl_status cl_tw_item_from_caption(const struct cl_tw_config *c, uint64_t index,
                                       const char *caption, struct cl_tw_item *it,
                                       struct cl_err *e);

/* ---- text pools for TextSpan ---- */
enum cl_tw_family { CL_TW_FAM_COLOUR, CL_TW_FAM_SHAPE, CL_TW_FAM_SIZE, CL_TW_FAM_POSITION,
                    CL_TW_FAM_BACKGROUND, CL_TW_FAM_COUNT, CL_TW_FAM_DISTRACTOR,
                    CL_TW_NFAMILIES };
extern const char *const cl_tw_family_names[CL_TW_NFAMILIES]; /* "colour", ..., "distractor" */

struct cl_tw_phrase { int family; char text[96]; };
/* Fill out[0..] with the pool's phrases (attribute families and/or distractors)
 * in a fixed order; returns how many there are (call with out NULL to count). */
size_t cl_tw_pool(int attributes, int distractors, struct cl_tw_phrase *out, size_t cap);

#endif
