#pragma once

#include "registrar/registrar_config.h"

namespace sipwake::registrar {

// The composition root: builds every part from the config, wires them, runs
// until SIGTERM/SIGINT, and stops without un-registering anything (a
// restarted instance refreshes the same contacts).
// Returns the process exit code; throws on start-up errors.
int runRegistrar(const RegistrarConfig& config);

}  // namespace sipwake::registrar
