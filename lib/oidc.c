#include "config.h"
#include "oidc.h"
