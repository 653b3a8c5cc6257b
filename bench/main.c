#include <stdio.h>
int main(void) { puts("ttmerge"); return 0; }
