#include "config.h"
#include "aadsts.h"
