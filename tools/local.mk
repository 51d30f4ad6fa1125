bin_PROGRAMS += tools/shrink-run tools/shrink-eval
tools_shrink_run_SOURCES = tools/shrink-run.c tools/cli.c tools/cli.h
tools_shrink_eval_SOURCES = tools/shrink-eval.c tools/cli.c tools/cli.h
bin_PROGRAMS += tools/shrink-quantize
tools_shrink_quantize_SOURCES = tools/shrink-quantize.c tools/cli.c tools/cli.h
