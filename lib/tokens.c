#include "config.h"
#include "tokens.h"
