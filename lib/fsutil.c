#include "config.h"
#include "fsutil.h"
