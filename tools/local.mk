bin_PROGRAMS += tools/shrink-run tools/shrink-eval
tools_shrink_run_SOURCES = tools/shrink-run.c tools/cli.c tools/cli.h
tools_shrink_eval_SOURCES = tools/shrink-eval.c tools/cli.c tools/cli.h
