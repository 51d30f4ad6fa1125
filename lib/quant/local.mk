# lib/quant: quantization schemes, packing, RTN, GPTQ
