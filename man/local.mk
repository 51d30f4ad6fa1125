dist_man_MANS += man/shrink-run.1 man/shrink-eval.1 man/shrink-quantize.1 man/shrink.7 man/shrink-format.5
