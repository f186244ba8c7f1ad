# Test-only: always fails with a terminating error.
param(
    [string]$Reason = 'broken on purpose'
)

$ErrorActionPreference = 'Stop'
throw "exec_fail: $Reason"
