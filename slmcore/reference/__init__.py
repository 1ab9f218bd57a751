"""Pure-numpy kernels and forward passes: the test oracle. Never used at run time."""
