#include "config.h"
#include "session.h"
