/* The publishing module ("Login & publishing"): UDP discovery, the Active
 * Directory service connection point and automatic (Kerberos) login. */
#pragma once

#include "mod/module.h"

extern const atrium_module_t publishing_module;
