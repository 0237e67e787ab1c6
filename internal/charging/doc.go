// Package charging plans off-peak charging and keeps a car's charge schedules
// in line with the plan.
//
// The parts, in the order a cycle uses them:
//
//   - Tariff: the cheap hours from configuration (TARIFF_WINDOWS,
//     TARIFF_WINDOWS_WEEKEND, TARIFF_HOLIDAYS), turned into absolute
//     intervals by walking calendar days in the tariff's zone, so DST change
//     days have the right number of real hours.
//   - Planner: BuiltinPlanner (earliest cheap time first, trimmed to what the
//     energy needs), ExternalPlanner (the Python system's HTTP planner, with a
//     daily quota and its answer clipped to cheap time), FallbackPlanner.
//   - ToSchedules: plan windows → Tesla charge schedules (wall-clock minutes,
//     one_time, only the day the window starts, our own ids).
//   - Standing: the tariff's cheap hours as recurring schedules at home,
//     kept beside the plan's so a plug-in before the next cycle waits.
//   - Reconcile: what to add and remove, by content.
//   - Cycle: one read, plan, reconcile, spaced commands, at most one wake,
//     the plan hash stored after every command succeeded, one cycle per car.
//
// Decisions where the brief left room (each is repeated where it is coded):
//
//   - Weekday/weekend variant: every instant is judged by the calendar day it
//     falls on. "22:00-06:00" means 00:00-06:00 and 22:00-24:00 of each day
//     that uses the variant. With G12w (weekend 00:00-24:00) that gives Friday
//     22:00 → Monday 06:00 as one cheap stretch; the alternative "the day a
//     window starts chooses" would lose Monday 00:00-06:00 after a weekend day.
//   - Charging below the floor: when SoC < floor the plan starts with a window
//     from now that only covers floor−SoC, cheap or not; everything above the
//     floor goes into cheap time. Not enough cheap time → Plan.Shortfall, never
//     expensive time.
//   - Our schedules carry ids that are Unix seconds, as Tesla's tools give,
//     but dated from 2001-09-09 (OurIDBase = 1e9), long before charge
//     schedules existed, so no id the proxy or the app assigns (now, in s,
//     ms or µs) is ours. Each start date has a block of 1000 ids; the slot
//     is a hash of the content, so a fired one-time schedule from last week
//     never passes for tonight's, and the id tells its start date.
//   - A window that crosses midnight stays one schedule with end < start; one
//     of 24 h or more is split at local midnights.
//   - Window edges are whole minutes: the start is now (truncated) or a
//     tariff edge, the needed time is rounded up to a minute.
//   - The plan aims at min(CHARGE_TARGET_PERCENT, the car's charge limit):
//     the car stops at its limit anyway.
//   - Standing schedules (standing.go): the tariff's cheap hours stay on the
//     car as recurring schedules at home beside the plan's one-time ones,
//     because a Tesla plugged in where no schedule applies charges at once
//     and one-time schedules are gone after they ran. With a target below
//     the car's limit, a plugged-in car's standing windows before READY_BY
//     are left out so the plan alone decides the night. Their ids sit in the
//     id block of 2020-01-01, stable for given hours, so a change of days
//     modifies a schedule in place (Reconcile sends one add, no removal).
package charging
