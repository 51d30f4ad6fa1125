#include <stdio.h>
int main(void) { puts("todo"); return 0; }
