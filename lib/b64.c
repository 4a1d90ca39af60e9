#include "config.h"
#include "b64.h"
