# toy_study.mk - the toy-world study (P1 on the bundled toy CLIP, issue 6):
#   (a) which heads carry colour, shape, position, background, named by TextSpan
#       texts alone and checked against the pool's attribute families (and by
#       property-based retrieval against the scenes' true attributes);
#   (b) the accumulated mean-ablation curve over attention layers, and the MLP ablation;
#   (c) the spurious split: worst-group accuracy before and after mean-ablating the
#       background heads found by TextSpan, against as many random heads (5 draws).
#
#   make -f pipelines/toy_study.mk                 # bundled model, results in build/toy_study
#   make -f pipelines/toy_study.mk MODEL=dir OUT=dir N=3000 NSPUR=2000 PER_HEAD=10
# The report is $(OUT)/report.md (written by scripts/toy_study_report.py).

ROOT     := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
BIN      := $(ROOT)/bin
MODEL    ?= $(ROOT)/models/toyclip
OUT      ?= $(ROOT)/build/toy_study
N        ?= 3000
NSPUR    ?= 2000
PER_HEAD ?= 10
SEED     ?= 1
THREADS  ?= 2
PY       := /usr/bin/python3
Q        := -q

.PHONY: all clean
all: $(OUT)/report.md

# Every result depends on the model and on the programs (and on these recipes): a
# retrained model or a rebuilt program reruns the whole study, never reports stale numbers.
INPUTS   := $(wildcard $(MODEL)/*.json $(MODEL)/*.safetensors $(MODEL)/*.txt $(BIN)/clip-* \
                       $(ROOT)/scripts/toy_study_report.py) $(lastword $(MAKEFILE_LIST))

$(OUT)/.dir: $(INPUTS)
	@test -d "$(MODEL)" || { echo "toy_study: no model at $(MODEL) (train it with 'make toyclip' or pass MODEL=dir)" >&2; exit 1; }
	mkdir -p $(OUT) && touch $@

# ---- data: a random split for head roles and the ablation curve, the spurious split
$(OUT)/world/manifest.tsv: $(OUT)/.dir
	$(BIN)/clip-toyworld dataset $(Q) --n $(N) --seed $(SEED) --split random -o $(OUT)/world
$(OUT)/spur_train/manifest.tsv: $(OUT)/.dir
	$(BIN)/clip-toyworld dataset $(Q) --n $(NSPUR) --seed $(SEED) --split spurious-train -o $(OUT)/spur_train
$(OUT)/spur_test/manifest.tsv: $(OUT)/.dir
	$(BIN)/clip-toyworld dataset $(Q) --n $(NSPUR) --seed $(shell expr $(SEED) + 1) --split spurious-test -o $(OUT)/spur_test

# ---- decompositions (labels and every attribute travel in item meta)
$(OUT)/%.cts: $(OUT)/%/manifest.tsv
	$(BIN)/clip-decompose $(Q) -m $(MODEL) -t $(THREADS) --manifest - -o $@ < $<

# ---- the text pool with its attribute families, and the zero-shot classifiers
$(OUT)/pool.tsv: $(OUT)/.dir
	$(BIN)/clip-toyworld pool | tail -n +2 > $@
$(OUT)/pool.cts: $(OUT)/pool.tsv
	cut -f2 $< > $(OUT)/pool.txt
	$(BIN)/clip-encode $(Q) -m $(MODEL) --texts $(OUT)/pool.txt -o $@
$(OUT)/templates.txt: $(OUT)/.dir
	printf 'a {}\na {} shape\na photo of a {}\nan image of a {}\n' > $@
$(OUT)/shapes.cts: $(OUT)/templates.txt
	printf 'circle\nsquare\ntriangle\nstar\ncross\nring\nheart\ndiamond\n' > $(OUT)/shapes.txt
	$(BIN)/clip-encode $(Q) -m $(MODEL) --classes $(OUT)/shapes.txt --templates $< -o $@
$(OUT)/spur_classes.cts: $(OUT)/templates.txt
	printf 'triangle\nsquare\n' > $(OUT)/spur_classes.txt
	$(BIN)/clip-encode $(Q) -m $(MODEL) --classes $(OUT)/spur_classes.txt --templates $< -o $@

# ---- TextSpan over every head
$(OUT)/basis.cts: $(OUT)/world.cts $(OUT)/pool.cts
	$(BIN)/clip-textspan $(Q) -t $(THREADS) --pool $(OUT)/pool.cts --layers all --per-head $(PER_HEAD) \
	    --report $(OUT)/textspan.txt -o $@ $(OUT)/world.cts

# ---- (b) the accumulated attention-layer curve and the MLP ablation (shape of object 0)
$(OUT)/curve.json: $(OUT)/world.cts $(OUT)/shapes.cts
	$(BIN)/clip-ablate $(Q) -c $(OUT)/shapes.cts --sweep attn --json $(OUT)/world.cts > $@
$(OUT)/mlps.json: $(OUT)/world.cts $(OUT)/shapes.cts
	$(BIN)/clip-ablate $(Q) -c $(OUT)/shapes.cts --sweep mlps --json $(OUT)/world.cts > $@

# ---- (a) + (c) and the report: head families, retrieval checks, spurious ablations
$(OUT)/report.md: $(OUT)/basis.cts $(OUT)/pool.tsv $(OUT)/curve.json $(OUT)/mlps.json \
                  $(OUT)/spur_train.cts $(OUT)/spur_test.cts $(OUT)/spur_classes.cts
	$(PY) $(ROOT)/scripts/toy_study_report.py --dir $(OUT) --bin $(BIN) --model $(MODEL) -o $@
	@echo "toy_study: wrote $@"

clean:
	rm -rf $(OUT)
