/* model.c - load a CLIP model directory (HF or OpenCLIP layout): configs, then
 * every weight checked against the shape the config implies and made f32.
 *
 * Dimension legend: L layers, H heads, N tokens (1 + G patches), D width,
 * M MLP width, E embedding dim, S image size, P patch, C context, V vocabulary.
 */
#include "model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "stream.h"

#define MAX_CONFIG_BYTES (16u << 20)

static const float openai_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float openai_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

const char *cl_layout_name(enum cl_layout l) { return l == CL_LAYOUT_HF ? "hf" : "open_clip"; }

/* ---------------------------------------------------------------- JSON helpers */

static enum cl_status read_json(const char *path, cJSON **out, struct cl_err *e)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cl_errf(e, CL_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = malloc(MAX_CONFIG_BYTES + 1);
    if (!buf) {
        fclose(f);
        return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
    int err = ferror(f);
    fclose(f);
    enum cl_status s = CL_OK;
    if (err)
        s = cl_errf(e, CL_ERR_IO, "%s: read error", path);
    else if (n > MAX_CONFIG_BYTES)
        s = cl_errf(e, CL_ERR_DATA, "%s: larger than %u bytes, not a config", path, MAX_CONFIG_BYTES);
    else if (!(*out = cJSON_ParseWithLength(buf, n)))
        s = cl_errf(e, CL_ERR_DATA, "%s: not valid JSON", path);
    else if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        s = cl_errf(e, CL_ERR_DATA, "%s: not a JSON object", path);
    }
    free(buf);
    return s;
}

/* Where a config value comes from, for messages: file and the enclosing object. */
struct jctx {
    const char *file;
    const char *obj;
    struct cl_err *e;
};

static const cJSON *jget(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsNull(v) ? NULL : v;
}

/* An integer in [lo, hi]; def is used when absent (def < lo means required). */
static enum cl_status jint(const struct jctx *c, const cJSON *o, const char *key, long def, long lo,
                           long hi, int *out)
{
    const cJSON *v = jget(o, key);
    if (!v) {
        if (def < lo)
            return cl_errf(c->e, CL_ERR_DATA, "%s: %s%s\"%s\" is missing", c->file, c->obj,
                           *c->obj ? "." : "", key);
        *out = (int)def;
        return CL_OK;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d == floor(d)) || d < (double)lo || d > (double)hi)
        return cl_errf(c->e, CL_ERR_DATA, "%s: %s%s\"%s\" must be an integer in [%ld, %ld]", c->file,
                       c->obj, *c->obj ? "." : "", key, lo, hi);
    *out = (int)d;
    return CL_OK;
}

static enum cl_status jnum(const struct jctx *c, const cJSON *o, const char *key, double def, double lo,
                           double hi, double *out)
{
    const cJSON *v = jget(o, key);
    if (!v) {
        *out = def;
        return CL_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return cl_errf(c->e, CL_ERR_DATA, "%s: %s%s\"%s\" must be a number in [%g, %g]", c->file, c->obj,
                       *c->obj ? "." : "", key, lo, hi);
    *out = v->valuedouble;
    return CL_OK;
}

/* Three numbers (RGB mean or std); def when absent. std must be positive. */
static enum cl_status jrgb(const struct jctx *c, const cJSON *o, const char *key, const float *def,
                           int positive, float *out)
{
    const cJSON *v = jget(o, key);
    if (!v) {
        memcpy(out, def, 3 * sizeof *out);
        return CL_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
        return cl_errf(c->e, CL_ERR_DATA, "%s: \"%s\" must be a list of 3 numbers", c->file, key);
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || (positive && !(x->valuedouble > 0)) ||
            fabs(x->valuedouble) > 1e3)
            return cl_errf(c->e, CL_ERR_DATA, "%s: \"%s\"[%d] must be a %snumber", c->file, key, i,
                           positive ? "positive " : "");
        out[i] = (float)x->valuedouble;
    }
    return CL_OK;
}

static int jtrue(const cJSON *o, const char *key)
{
    const cJSON *v = jget(o, key);
    return v && (cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0));
}

static enum cl_status parse_act(const struct jctx *c, const cJSON *o, const char *key, enum cl_act *out)
{
    const cJSON *v = jget(o, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : v ? "(not a string)" : "quick_gelu";
    if (strcmp(s, "quick_gelu") == 0)
        *out = CL_ACT_QUICK_GELU;
    else if (strcmp(s, "gelu") == 0)
        *out = CL_ACT_GELU;
    else
        return cl_errf(c->e, CL_ERR_UNSUPPORTED, "%s: %s.%s \"%.40s\" is not supported "
                       "(\"gelu\" or \"quick_gelu\")", c->file, c->obj, key, s);
    return CL_OK;
}

/* Caps that keep every size computation far from overflow. */
static enum cl_status check_tower(const struct jctx *c, struct cl_tower_config *t, const char *what)
{
    if (t->width % t->heads)
        return cl_errf(c->e, CL_ERR_DATA, "%s: %s width %d is not a multiple of %d heads", c->file, what,
                       t->width, t->heads);
    t->head_dim = t->width / t->heads;
    return CL_OK;
}

static enum cl_status finish_config(const struct jctx *c, struct cl_model_config *cfg)
{
    enum cl_status s;
    if ((s = check_tower(c, &cfg->vision, "vision")) || (s = check_tower(c, &cfg->text, "text")))
        return s;
    if (cfg->image_size % cfg->patch)
        return cl_errf(c->e, CL_ERR_DATA, "%s: image size %d is not a multiple of the patch size %d",
                       c->file, cfg->image_size, cfg->patch);
    cfg->grid = cfg->image_size / cfg->patch;
    if (cfg->grid > 256)
        return cl_errf(c->e, CL_ERR_DATA, "%s: %d x %d patches, at most 256 x 256 supported", c->file,
                       cfg->grid, cfg->grid);
    cfg->tokens = 1 + cfg->grid * cfg->grid;
    return CL_OK;
}

/* ---------------------------------------------------------------- HF config */

static enum cl_status hf_tower(const struct jctx *c, const cJSON *root, const char *key, int vision,
                               struct cl_model_config *cfg)
{
    /* transformers' defaults apply to absent keys; a legacy "<key>_dict" overrides */
    char dict_key[64];
    snprintf(dict_key, sizeof dict_key, "%s_dict", key);
    const cJSON *objs[2] = {jget(root, key), jget(root, dict_key)};
    struct cl_tower_config *t = vision ? &cfg->vision : &cfg->text;
    *t = (struct cl_tower_config){.layers = 12, .width = vision ? 768 : 512, .heads = vision ? 12 : 8,
                                  .mlp = vision ? 3072 : 2048, .act = CL_ACT_QUICK_GELU, .ln_eps = 1e-5f};
    if (vision) {
        cfg->image_size = 224;
        cfg->patch = 32;
    } else {
        cfg->context = 77;
        cfg->vocab_size = 49408;
    }
    for (int i = 0; i < 2; i++) {
        const cJSON *o = objs[i];
        if (!o)
            continue;
        struct jctx cc = {c->file, i ? dict_key : key, c->e};
        if (!cJSON_IsObject(o))
            return cl_errf(c->e, CL_ERR_DATA, "%s: \"%s\" is not an object", c->file, cc.obj);
        const cJSON *mt = jget(o, "model_type");
        if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, vision ? "clip_vision_model"
                                                                         : "clip_text_model")))
            return cl_errf(c->e, CL_ERR_UNSUPPORTED, "%s: %s.model_type \"%.40s\" is not supported",
                           c->file, cc.obj, cJSON_IsString(mt) ? mt->valuestring : "?");
        double eps;
        enum cl_status s;
        if ((s = jint(&cc, o, "num_hidden_layers", t->layers, 1, CL_MODEL_MAX_LAYERS, &t->layers)) ||
            (s = jint(&cc, o, "hidden_size", t->width, 1, 16384, &t->width)) ||
            (s = jint(&cc, o, "num_attention_heads", t->heads, 1, 1024, &t->heads)) ||
            (s = jint(&cc, o, "intermediate_size", t->mlp, 1, 65536, &t->mlp)) ||
            (s = jnum(&cc, o, "layer_norm_eps", t->ln_eps, 0, 1, &eps)))
            return s;
        t->ln_eps = (float)eps;
        if (jget(o, "hidden_act") && (s = parse_act(&cc, o, "hidden_act", &t->act)))
            return s;
        if (vision) {
            int ch = 3;
            if ((s = jint(&cc, o, "image_size", cfg->image_size, 1, 4096, &cfg->image_size)) ||
                (s = jint(&cc, o, "patch_size", cfg->patch, 1, 4096, &cfg->patch)) ||
                (s = jint(&cc, o, "num_channels", 3, 1, 64, &ch)))
                return s;
            if (ch != 3)
                return cl_errf(c->e, CL_ERR_UNSUPPORTED, "%s: %s.num_channels %d (only RGB)", c->file,
                               cc.obj, ch);
        } else if ((s = jint(&cc, o, "max_position_embeddings", cfg->context, 2, 4096, &cfg->context)) ||
                   (s = jint(&cc, o, "vocab_size", cfg->vocab_size, 2, 1 << 22, &cfg->vocab_size)))
            return s;
    }
    return CL_OK;
}

/* "crop_size" / "size": an int, {"height": h, "width": w} or {"shortest_edge": s}. */
static enum cl_status hf_size(const struct jctx *c, const cJSON *o, const char *key, int def, int *out)
{
    const cJSON *v = jget(o, key);
    if (!v || cJSON_IsNumber(v))
        return jint(c, o, key, def, 1, 4096, out);
    if (cJSON_IsObject(v)) {
        struct jctx cc = {c->file, key, c->e};
        int h, w;
        enum cl_status s;
        if (jget(v, "shortest_edge"))
            return jint(&cc, v, "shortest_edge", def, 1, 4096, out);
        if ((s = jint(&cc, v, "height", -1, 1, 4096, &h)) || (s = jint(&cc, v, "width", -1, 1, 4096, &w)))
            return s;
        if (h != w)
            return cl_errf(c->e, CL_ERR_UNSUPPORTED, "%s: %s %d x %d is not square", c->file, key, h, w);
        *out = h;
        return CL_OK;
    }
    return cl_errf(c->e, CL_ERR_DATA, "%s: \"%s\" must be a number or an object", c->file, key);
}

static enum cl_status parse_hf(const char *dir, struct cl_model_config *cfg, struct cl_err *e)
{
    char path[CL_MODEL_PATH + 64];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root;
    enum cl_status s = read_json(path, &root, e);
    if (s)
        return s;
    struct jctx c = {path, "", e};
    const cJSON *mt = jget(root, "model_type");
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "clip")))
        s = cl_errf(e, CL_ERR_UNSUPPORTED, "%s: model_type \"%.40s\" is not supported (only \"clip\")",
                    path, cJSON_IsString(mt) ? mt->valuestring : "?");
    if (!s && !jget(root, "vision_config") && !jget(root, "vision_config_dict"))
        s = cl_errf(e, CL_ERR_DATA, "%s: no \"vision_config\": not a CLIPModel config", path);
    if (!s)
        s = hf_tower(&c, root, "vision_config", 1, cfg);
    if (!s)
        s = hf_tower(&c, root, "text_config", 0, cfg);
    if (!s)
        s = jint(&c, root, "projection_dim", 512, 1, 16384, &cfg->embed_dim);
    cJSON_Delete(root);
    if (s)
        return s;

    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    if ((s = read_json(path, &root, e)))
        return s;
    c.file = path;
    int crop = cfg->image_size;
    cfg->resize = cfg->image_size;
    if (!(s = jrgb(&c, root, "image_mean", openai_mean, 0, cfg->mean)) &&
        !(s = jrgb(&c, root, "image_std", openai_std, 1, cfg->std)) &&
        !(s = hf_size(&c, root, "crop_size", cfg->image_size, &crop)) &&
        !(s = hf_size(&c, root, "size", cfg->image_size, &cfg->resize)) && crop != cfg->image_size)
        s = cl_errf(e, CL_ERR_DATA, "%s: crop size %d differs from the vision config's image size %d",
                    path, crop, cfg->image_size);
    cJSON_Delete(root);
    return s;
}

/* ---------------------------------------------------------------- OpenCLIP config */

/* Options of OpenCLIP towers that change the computation: refused by name. */
static enum cl_status oc_refuse(const struct jctx *c, const cJSON *o)
{
    static const char *const truthy[] = {"attentional_pool", "no_ln_pre", "final_ln_after_pool",
                                         "input_patchnorm", "global_average_pool", "embed_cls",
                                         "no_causal_mask", "proj_bias"};
    static const char *const present[] = {"timm_model_name", "hf_model_name", "ls_init_value", "act_kwargs"};
    for (size_t i = 0; i < sizeof truthy / sizeof *truthy; i++)
        if (jtrue(o, truthy[i]))
            return cl_errf(c->e, CL_ERR_UNSUPPORTED, "%s: %s.%s is not supported", c->file, c->obj, truthy[i]);
    for (size_t i = 0; i < sizeof present / sizeof *present; i++) {
        const cJSON *v = jget(o, present[i]);
        if (v && !(cJSON_IsString(v) && v->valuestring[0] == '\0'))
            return cl_errf(c->e, CL_ERR_UNSUPPORTED, "%s: %s.%s%s%.60s is not supported (ViT towers only)",
                           c->file, c->obj, present[i], cJSON_IsString(v) ? " " : "",
                           cJSON_IsString(v) ? v->valuestring : "");
    }
    const cJSON *pt = jget(o, "pool_type");
    const char *want = strcmp(c->obj, "vision_cfg") == 0 ? "tok" : "argmax";
    if (pt && (!cJSON_IsString(pt) || strcmp(pt->valuestring, want)))
        return cl_errf(c->e, CL_ERR_UNSUPPORTED, "%s: %s.pool_type \"%.40s\" is not supported (\"%s\")",
                       c->file, c->obj, cJSON_IsString(pt) ? pt->valuestring : "?", want);
    return CL_OK;
}

static enum cl_status oc_eps(const struct jctx *c, const cJSON *o, float *eps)
{
    const cJSON *nk = jget(o, "norm_kwargs");
    double d;
    enum cl_status s;
    if (!nk)
        return CL_OK;
    struct jctx cc = {c->file, "norm_kwargs", c->e};
    if ((s = jnum(&cc, nk, "eps", 1e-5, 0, 1, &d)))
        return s;
    *eps = (float)d;
    return CL_OK;
}

static enum cl_status parse_openclip(const char *dir, struct cl_model_config *cfg, struct cl_err *e)
{
    char path[CL_MODEL_PATH + 64];
    snprintf(path, sizeof path, "%s/open_clip_config.json", dir);
    cJSON *root;
    enum cl_status s = read_json(path, &root, e);
    if (s)
        return s;
    struct jctx c = {path, "model_cfg", e};
    const cJSON *mc = jget(root, "model_cfg");
    const cJSON *vc = jget(mc, "vision_cfg"), *tc = jget(mc, "text_cfg");
    const cJSON *pc = jget(root, "preprocess_cfg");
    struct jctx cv = {path, "vision_cfg", e}, ct = {path, "text_cfg", e}, cp = {path, "preprocess_cfg", e};
    if (!cJSON_IsObject(mc) || !cJSON_IsObject(vc) || !cJSON_IsObject(tc)) {
        s = cl_errf(e, CL_ERR_DATA, "%s: expected objects model_cfg.vision_cfg and model_cfg.text_cfg", path);
        goto out;
    }
    if (jtrue(mc, "custom_text") || jget(mc, "init_logit_bias") || jget(mc, "multimodal_cfg")) {
        s = cl_errf(e, CL_ERR_UNSUPPORTED, "%s: model_cfg has custom_text, init_logit_bias (SigLIP) or "
                    "multimodal_cfg (CoCa): only plain CLIP is supported", path);
        goto out;
    }
    if (cJSON_IsArray(jget(vc, "layers"))) {
        s = cl_errf(e, CL_ERR_UNSUPPORTED, "%s: vision_cfg.layers is a list: a ModifiedResNet tower, "
                    "only ViT towers are supported", path);
        goto out;
    }
    if ((s = oc_refuse(&cv, vc)) || (s = oc_refuse(&ct, tc)))
        goto out;
    struct cl_tower_config *v = &cfg->vision, *t = &cfg->text;
    int head_width;
    double vr, tr;
    const cJSON *isz = jget(vc, "image_size");
    if (cJSON_IsArray(isz)) { /* [h, w]: square only */
        const cJSON *h = cJSON_GetArrayItem(isz, 0), *w = cJSON_GetArrayItem(isz, 1);
        if (cJSON_GetArraySize(isz) != 2 || !cJSON_IsNumber(h) || !cJSON_IsNumber(w) ||
            h->valuedouble != w->valuedouble) {
            s = cl_errf(e, CL_ERR_UNSUPPORTED, "%s: vision_cfg.image_size must be one number or [s, s]", path);
            goto out;
        }
        cfg->image_size = h->valueint;
        if (cfg->image_size < 1 || cfg->image_size > 4096 || h->valuedouble != cfg->image_size) {
            s = cl_errf(e, CL_ERR_DATA, "%s: vision_cfg.image_size must be an integer in [1, 4096]", path);
            goto out;
        }
    } else if ((s = jint(&cv, vc, "image_size", 224, 1, 4096, &cfg->image_size)))
        goto out;
    if ((s = jint(&c, mc, "embed_dim", -1, 1, 16384, &cfg->embed_dim)) ||
        (s = jint(&cv, vc, "layers", 12, 1, CL_MODEL_MAX_LAYERS, &v->layers)) ||
        (s = jint(&cv, vc, "width", 768, 1, 16384, &v->width)) ||
        (s = jint(&cv, vc, "head_width", 64, 1, 16384, &head_width)) ||
        (s = jint(&cv, vc, "patch_size", 16, 1, 4096, &cfg->patch)) ||
        (s = jnum(&cv, vc, "mlp_ratio", 4.0, 0.01, 64, &vr)) ||
        (s = jint(&ct, tc, "context_length", 77, 2, 4096, &cfg->context)) ||
        (s = jint(&ct, tc, "vocab_size", 49408, 2, 1 << 22, &cfg->vocab_size)) ||
        (s = jint(&ct, tc, "width", 512, 1, 16384, &t->width)) ||
        (s = jint(&ct, tc, "heads", 8, 1, 1024, &t->heads)) ||
        (s = jint(&ct, tc, "layers", 12, 1, CL_MODEL_MAX_LAYERS, &t->layers)) ||
        (s = jnum(&ct, tc, "mlp_ratio", 4.0, 0.01, 64, &tr)))
        goto out;
    if (v->width % head_width) {
        s = cl_errf(e, CL_ERR_DATA, "%s: vision_cfg.width %d is not a multiple of head_width %d", path,
                    v->width, head_width);
        goto out;
    }
    v->heads = v->width / head_width;
    v->mlp = (int)(v->width * vr); /* as OpenCLIP: int(width * mlp_ratio) */
    t->mlp = (int)(t->width * tr);
    v->act = t->act = jtrue(mc, "quick_gelu") ? CL_ACT_QUICK_GELU : CL_ACT_GELU;
    v->ln_eps = t->ln_eps = 1e-5f;
    if ((s = oc_eps(&cv, vc, &v->ln_eps)) || (s = oc_eps(&ct, tc, &t->ln_eps)))
        goto out;
    cfg->resize = cfg->image_size;
    if ((s = jrgb(&cp, pc, "mean", openai_mean, 0, cfg->mean)) ||
        (s = jrgb(&cp, pc, "std", openai_std, 1, cfg->std)))
        goto out;
    const cJSON *rm = jget(pc, "resize_mode"), *ip = jget(pc, "interpolation");
    if (rm && (!cJSON_IsString(rm) || strcmp(rm->valuestring, "shortest")))
        s = cl_errf(e, CL_ERR_UNSUPPORTED, "%s: preprocess_cfg.resize_mode \"%.40s\" is not supported "
                    "(\"shortest\")", path, cJSON_IsString(rm) ? rm->valuestring : "?");
    else if (ip && (!cJSON_IsString(ip) || strcmp(ip->valuestring, "bicubic")))
        s = cl_errf(e, CL_ERR_UNSUPPORTED, "%s: preprocess_cfg.interpolation \"%.40s\" is not supported "
                    "(\"bicubic\")", path, cJSON_IsString(ip) ? ip->valuestring : "?");
out:
    cJSON_Delete(root);
    return s;
}

/* ---------------------------------------------------------------- weights */

/* One weight to fetch: its name in the file, the shape the config implies, and
 * where its f32 pointer goes. transpose: the file holds [in, out] (OpenCLIP's
 * visual.proj / text_projection, applied as x @ proj), made [out, in] here. */
struct wreq {
    char name[160];
    int ndim;
    int64_t shape[4];
    const float **dst;
    int transpose;
    const struct cl_st_tensor *t;
    int copy;  /* 1: converted into the arena */
};

struct wplan {
    struct wreq *r;
    int n, cap;
};

static enum cl_status want(struct wplan *p, const float **dst, int transpose, int ndim, const int64_t *shape,
                           struct cl_err *e, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static enum cl_status want(struct wplan *p, const float **dst, int transpose, int ndim, const int64_t *shape,
                           struct cl_err *e, const char *fmt, ...)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        struct wreq *r = realloc(p->r, (size_t)cap * sizeof *r);
        if (!r)
            return cl_errf(e, CL_ERR_NOMEM, "out of memory planning weights");
        p->r = r;
        p->cap = cap;
    }
    struct wreq *r = &p->r[p->n++];
    memset(r, 0, sizeof *r);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->name, sizeof r->name, fmt, ap);
    va_end(ap);
    r->ndim = ndim;
    memcpy(r->shape, shape, (size_t)ndim * sizeof *shape);
    r->dst = dst;
    r->transpose = transpose;
    return CL_OK;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static enum cl_status w1(struct wplan *p, const float **dst, int64_t a, struct cl_err *e, const char *name)
{
    return want(p, dst, 0, 1, SHAPE(a), e, "%s", name);
}

static enum cl_status w2(struct wplan *p, const float **dst, int64_t a, int64_t b, struct cl_err *e,
                         const char *name)
{
    return want(p, dst, 0, 2, SHAPE(a, b), e, "%s", name);
}

/* A block's weights; HF keeps q, k, v apart, OpenCLIP stacks them in in_proj [3D, D]
 * (handled by splitting the pointer after loading: see split_in_proj). */
static enum cl_status plan_block(struct wplan *p, enum cl_layout lay, const char *pre, int i,
                                 const struct cl_tower_config *t, struct cl_block *b, const float **in_w,
                                 const float **in_b, struct cl_err *e)
{
    int64_t D = t->width, M = t->mlp;
    char n[160];
    enum cl_status s;
#define N(fmt) (snprintf(n, sizeof n, "%s" fmt, pre, i), n)
    if (lay == CL_LAYOUT_OPENCLIP) {
        if ((s = w1(p, &b->ln1_g, D, e, N("transformer.resblocks.%d.ln_1.weight"))) ||
            (s = w1(p, &b->ln1_b, D, e, N("transformer.resblocks.%d.ln_1.bias"))) ||
            (s = w2(p, in_w, 3 * D, D, e, N("transformer.resblocks.%d.attn.in_proj_weight"))) ||
            (s = w1(p, in_b, 3 * D, e, N("transformer.resblocks.%d.attn.in_proj_bias"))) ||
            (s = w2(p, &b->wo, D, D, e, N("transformer.resblocks.%d.attn.out_proj.weight"))) ||
            (s = w1(p, &b->bo, D, e, N("transformer.resblocks.%d.attn.out_proj.bias"))) ||
            (s = w1(p, &b->ln2_g, D, e, N("transformer.resblocks.%d.ln_2.weight"))) ||
            (s = w1(p, &b->ln2_b, D, e, N("transformer.resblocks.%d.ln_2.bias"))) ||
            (s = w2(p, &b->w_fc, M, D, e, N("transformer.resblocks.%d.mlp.c_fc.weight"))) ||
            (s = w1(p, &b->b_fc, M, e, N("transformer.resblocks.%d.mlp.c_fc.bias"))) ||
            (s = w2(p, &b->w_proj, D, M, e, N("transformer.resblocks.%d.mlp.c_proj.weight"))) ||
            (s = w1(p, &b->b_proj, D, e, N("transformer.resblocks.%d.mlp.c_proj.bias"))))
            return s;
    } else {
        if ((s = w1(p, &b->ln1_g, D, e, N("encoder.layers.%d.layer_norm1.weight"))) ||
            (s = w1(p, &b->ln1_b, D, e, N("encoder.layers.%d.layer_norm1.bias"))) ||
            (s = w2(p, &b->wq, D, D, e, N("encoder.layers.%d.self_attn.q_proj.weight"))) ||
            (s = w1(p, &b->bq, D, e, N("encoder.layers.%d.self_attn.q_proj.bias"))) ||
            (s = w2(p, &b->wk, D, D, e, N("encoder.layers.%d.self_attn.k_proj.weight"))) ||
            (s = w1(p, &b->bk, D, e, N("encoder.layers.%d.self_attn.k_proj.bias"))) ||
            (s = w2(p, &b->wv, D, D, e, N("encoder.layers.%d.self_attn.v_proj.weight"))) ||
            (s = w1(p, &b->bv, D, e, N("encoder.layers.%d.self_attn.v_proj.bias"))) ||
            (s = w2(p, &b->wo, D, D, e, N("encoder.layers.%d.self_attn.out_proj.weight"))) ||
            (s = w1(p, &b->bo, D, e, N("encoder.layers.%d.self_attn.out_proj.bias"))) ||
            (s = w1(p, &b->ln2_g, D, e, N("encoder.layers.%d.layer_norm2.weight"))) ||
            (s = w1(p, &b->ln2_b, D, e, N("encoder.layers.%d.layer_norm2.bias"))) ||
            (s = w2(p, &b->w_fc, M, D, e, N("encoder.layers.%d.mlp.fc1.weight"))) ||
            (s = w1(p, &b->b_fc, M, e, N("encoder.layers.%d.mlp.fc1.bias"))) ||
            (s = w2(p, &b->w_proj, D, M, e, N("encoder.layers.%d.mlp.fc2.weight"))) ||
            (s = w1(p, &b->b_proj, D, e, N("encoder.layers.%d.mlp.fc2.bias"))))
            return s;
    }
#undef N
    return CL_OK;
}

/* in-projection pointers of OpenCLIP blocks, split into q, k, v after loading */
struct inproj {
    const float *w, *b;
};

static enum cl_status plan_model(struct wplan *p, struct cl_model *m, struct inproj *ip, struct cl_err *e)
{
    const struct cl_model_config *c = &m->cfg;
    int64_t D = c->vision.width, T = c->text.width, E = c->embed_dim, P = c->patch;
    int oc = c->layout == CL_LAYOUT_OPENCLIP;
    struct cl_vision_weights *v = &m->vis;
    struct cl_text_weights *t = &m->txt;
    enum cl_status s;
    if ((s = want(p, &v->patch, 0, 4, SHAPE(D, 3, P, P), e, "%s",
                  oc ? "visual.conv1.weight" : "vision_model.embeddings.patch_embedding.weight")) ||
        (s = w1(p, &v->cls, D, e, oc ? "visual.class_embedding" : "vision_model.embeddings.class_embedding")) ||
        (s = w2(p, &v->pos, c->tokens, D, e,
                oc ? "visual.positional_embedding" : "vision_model.embeddings.position_embedding.weight")) ||
        (s = w1(p, &v->ln_pre_g, D, e, oc ? "visual.ln_pre.weight" : "vision_model.pre_layrnorm.weight")) ||
        (s = w1(p, &v->ln_pre_b, D, e, oc ? "visual.ln_pre.bias" : "vision_model.pre_layrnorm.bias")) ||
        (s = w1(p, &v->ln_post_g, D, e, oc ? "visual.ln_post.weight" : "vision_model.post_layernorm.weight")) ||
        (s = w1(p, &v->ln_post_b, D, e, oc ? "visual.ln_post.bias" : "vision_model.post_layernorm.bias")))
        return s;
    if (oc)
        s = want(p, &v->proj, 1, 2, SHAPE(D, E), e, "visual.proj");
    else
        s = w2(p, &v->proj, E, D, e, "visual_projection.weight");
    if (s)
        return s;
    for (int i = 0; i < c->vision.layers; i++)
        if ((s = plan_block(p, c->layout, oc ? "visual." : "vision_model.", i, &c->vision, &v->blocks[i],
                            &ip[i].w, &ip[i].b, e)))
            return s;
    struct inproj *tip = ip + c->vision.layers;
    if ((s = w2(p, &t->tok, c->vocab_size, T, e,
                oc ? "token_embedding.weight" : "text_model.embeddings.token_embedding.weight")) ||
        (s = w2(p, &t->pos, c->context, T, e,
                oc ? "positional_embedding" : "text_model.embeddings.position_embedding.weight")) ||
        (s = w1(p, &t->ln_final_g, T, e, oc ? "ln_final.weight" : "text_model.final_layer_norm.weight")) ||
        (s = w1(p, &t->ln_final_b, T, e, oc ? "ln_final.bias" : "text_model.final_layer_norm.bias")))
        return s;
    if (oc)
        s = want(p, &t->proj, 1, 2, SHAPE(T, E), e, "text_projection");
    else
        s = w2(p, &t->proj, E, T, e, "text_projection.weight");
    if (s)
        return s;
    for (int i = 0; i < c->text.layers; i++)
        if ((s = plan_block(p, c->layout, oc ? "" : "text_model.", i, &c->text, &t->blocks[i], &tip[i].w,
                            &tip[i].b, e)))
            return s;
    return CL_OK;
}

/* Look every planned weight up and check its shape, then convert: F32 data that is
 * 4-byte aligned and needs no transpose is used in place; the rest goes to the arena. */
static enum cl_status load_weights(struct cl_model *m, struct wplan *p, struct cl_err *e)
{
    size_t need = 0;
    for (int i = 0; i < p->n; i++) {
        struct wreq *r = &p->r[i];
        enum cl_status s = cl_safetensors_get_shaped(m->st, r->name, r->ndim, r->shape, &r->t, e);
        if (s)
            return s;
        r->copy = r->t->dtype != CL_F32 || r->transpose || ((uintptr_t)r->t->data & 3u);
        if (r->copy)
            need += (r->t->numel + 15) & ~(size_t)15; /* keep every tensor 64-byte aligned */
    }
    if (need) {
        if (need > SIZE_MAX / sizeof(float) ||
            posix_memalign((void **)&m->arena, 64, need * sizeof(float)) != 0) {
            m->arena = NULL;
            return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory for %zu MB of f32 weights", m->st->path,
                           need * sizeof(float) >> 20);
        }
        m->arena_floats = need;
    }
    float *at = m->arena;
    for (int i = 0; i < p->n; i++) {
        struct wreq *r = &p->r[i];
        if (!r->copy) {
            *r->dst = r->t->data;
            continue;
        }
        cl_safetensors_read_f32(r->t, at);
        if (r->transpose) { /* [in, out] -> [out, in], through a scratch copy */
            size_t rows = (size_t)r->shape[0], cols = (size_t)r->shape[1];
            float *tmp = malloc(rows * cols * sizeof *tmp);
            if (!tmp)
                return cl_errf(e, CL_ERR_NOMEM, "out of memory transposing %s", r->name);
            memcpy(tmp, at, rows * cols * sizeof *tmp);
            for (size_t a = 0; a < rows; a++)
                for (size_t b = 0; b < cols; b++)
                    at[b * rows + a] = tmp[a * cols + b];
            free(tmp);
        }
        *r->dst = at;
        at += (r->t->numel + 15) & ~(size_t)15;
    }
    return CL_OK;
}

static void split_in_proj(struct cl_block *b, const struct inproj *ip, int d)
{
    size_t dd = (size_t)d * d;
    b->wq = ip->w;
    b->wk = ip->w + dd;
    b->wv = ip->w + 2 * dd;
    b->bq = ip->b;
    b->bk = ip->b + d;
    b->bv = ip->b + 2 * d;
}

static int file_exists(const char *dir, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    return access(path, R_OK) == 0;
}

enum cl_status cl_model_load(struct cl_model **out, const char *dir, struct cl_err *e)
{
    *out = NULL;
    if (strlen(dir) >= CL_MODEL_PATH - 64)
        return cl_errf(e, CL_ERR_USAGE, "%.80s...: model directory path too long", dir);
    struct cl_model *m = calloc(1, sizeof *m);
    if (!m)
        return cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", dir);
    struct cl_model_config *c = &m->cfg;
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    /* name: the last path component */
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    snprintf(c->name, sizeof c->name, "%.*s", (int)(len - start), dir + start);

    char path[CL_MODEL_PATH + 64], wpath[CL_MODEL_PATH + 64];
    enum cl_status s;
    struct wplan plan = {0};
    struct inproj *ip = NULL;
    if (file_exists(dir, "open_clip_config.json", path, sizeof path) &&
        file_exists(dir, "open_clip_model.safetensors", wpath, sizeof wpath)) {
        c->layout = CL_LAYOUT_OPENCLIP;
        s = parse_openclip(dir, c, e);
    } else if (file_exists(dir, "config.json", path, sizeof path) &&
               file_exists(dir, "model.safetensors", wpath, sizeof wpath)) {
        c->layout = CL_LAYOUT_HF;
        s = parse_hf(dir, c, e);
    } else {
        s = cl_errf(e, access(dir, R_OK) ? CL_ERR_IO : CL_ERR_DATA,
                    "%s: not a model directory: expected open_clip_config.json + "
                    "open_clip_model.safetensors (OpenCLIP) or config.json + model.safetensors (HF)%s",
                    dir, access(dir, R_OK) ? " (cannot read it)" : "");
        goto fail;
    }
    struct jctx jc = {path, "", e};
    if (s || (s = finish_config(&jc, c)))
        goto fail;
    if (!file_exists(dir, "vocab.json", c->vocab_path, sizeof c->vocab_path))
        c->vocab_path[0] = '\0';
    if (!file_exists(dir, "merges.txt", c->merges_path, sizeof c->merges_path))
        c->merges_path[0] = '\0';

    int nl = c->vision.layers + c->text.layers;
    m->block_store = calloc((size_t)nl, sizeof *m->block_store);
    ip = calloc((size_t)nl, sizeof *ip);
    if (!m->block_store || !ip) {
        s = cl_errf(e, CL_ERR_NOMEM, "%s: out of memory", dir);
        goto fail;
    }
    m->vis.blocks = m->block_store;
    m->txt.blocks = m->block_store + c->vision.layers;
    if ((s = cl_safetensors_open(&m->st, wpath, e)) || (s = plan_model(&plan, m, ip, e)) ||
        (s = load_weights(m, &plan, e)))
        goto fail;
    if (c->layout == CL_LAYOUT_OPENCLIP) {
        for (int i = 0; i < c->vision.layers; i++)
            split_in_proj(&m->vis.blocks[i], &ip[i], c->vision.width);
        for (int i = 0; i < c->text.layers; i++)
            split_in_proj(&m->txt.blocks[i], &ip[c->vision.layers + i], c->text.width);
    }
    const struct cl_st_tensor *ls = cl_safetensors_find(m->st, "logit_scale");
    if (ls && ls->supported && ls->numel == 1)
        cl_safetensors_read_f32(ls, &c->logit_scale);
    /* nothing points into the mapping: release it */
    int mapped = 0;
    for (int i = 0; i < plan.n; i++)
        mapped |= !plan.r[i].copy;
    if (!mapped) {
        cl_safetensors_close(m->st);
        m->st = NULL;
    }
    free(plan.r);
    free(ip);
    *out = m;
    return CL_OK;
fail:
    free(plan.r);
    free(ip);
    cl_model_free(m);
    return s;
}

void cl_model_free(struct cl_model *m)
{
    if (!m)
        return;
    cl_safetensors_close(m->st);
    free(m->arena);
    free(m->block_store);
    free(m);
}

void cl_model_describe(const struct cl_model *m, struct cl_model_info *info)
{
    memset(info, 0, sizeof *info);
    info->present = 1;
    snprintf(info->name, sizeof info->name, "%s", m->cfg.name);
    snprintf(info->layout, sizeof info->layout, "%s", cl_layout_name(m->cfg.layout));
    info->layers = m->cfg.vision.layers;
    info->heads = m->cfg.vision.heads;
    info->width = m->cfg.vision.width;
    info->embed_dim = m->cfg.embed_dim;
    info->patch = m->cfg.patch;
    info->image_size = m->cfg.image_size;
}
