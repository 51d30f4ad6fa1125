lib_libshrink_la_SOURCES += lib/io/gguf.c lib/io/gguf_model.c lib/io/vocab_gguf.c lib/io/vocab_json.c \
	lib/io/tokenizer_json.c lib/io/safetensors.c lib/io/hf_dir.c lib/io/hf_config.c lib/io/llama2c.c \
	lib/io/model_file.c lib/io/rope_permute.c lib/io/config.c lib/io/container_write.c lib/io/container_read.c

