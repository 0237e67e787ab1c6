package main

// Embed the time zone database: `fleetctl need` reads local times in
// TIMEZONE (Europe/Warsaw), and an operator's machine or a container may
// have no /usr/share/zoneinfo.
import _ "time/tzdata"
