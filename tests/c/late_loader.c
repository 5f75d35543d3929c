/*
 * Loads a library after start-up and runs a function of it, as Python loads torch (and with
 * it MIOpen) at `import torch`, long after anything preloaded has initialised.
 *
 * Usage: late_loader LIBRARY FUNCTION   (FUNCTION: int FUNCTION(void), its result is the exit
 * status)
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char** argv)
{
    if(argc != 3)
    {
        printf("usage: late_loader LIBRARY FUNCTION\n");
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if(lib == NULL)
    {
        printf("FAIL dlopen: %s\n", dlerror());
        return 1;
    }
    int (*run)(void);
    *(void**)(&run) = dlsym(lib, argv[2]);
    if(run == NULL)
    {
        printf("FAIL dlsym: %s\n", dlerror());
        return 1;
    }
    return run();
}
