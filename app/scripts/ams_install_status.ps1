# Reports whether the Access Manager installer started earlier is still running, and its result from the verbose log.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidateRange(1, 2147483647)][int]$ProcessId,
    [Parameter(Mandatory)][string]$LogPath,
    [ValidateRange(1, 200)][int]$TailLines = 25
)

$ErrorActionPreference = 'Stop'

# The id alone may have been reused: it is our installer only if its command line names our log.
$process = Get-CimInstance -ClassName Win32_Process -Filter ('ProcessId = {0}' -f $ProcessId)
$running = [bool]($process -and $process.CommandLine -and $process.CommandLine.Contains($LogPath))

$exitCode = $null
$tail = @()
if (Test-Path -LiteralPath $LogPath) {
    $lines = @(Get-Content -LiteralPath $LogPath)
    $tail = @($lines | Select-Object -Last $TailLines)
    $status = $lines | Select-String -Pattern 'Installation success or error status: (\d+)' | Select-Object -Last 1
    if ($status) {
        $exitCode = [int]$status.Matches[0].Groups[1].Value
    }
}
if ($running) {
    Write-Progress -Activity 'Access Manager installer' -Status 'Running' -PercentComplete 50
}

[PSCustomObject]@{
    process_id      = $ProcessId
    running         = $running
    exit_code       = $exitCode
    succeeded       = ($exitCode -eq 0 -or $exitCode -eq 3010)
    reboot_required = ($exitCode -eq 3010)
    log_path        = $LogPath
    log_tail        = $tail
} | ConvertTo-Json -Compress -Depth 8
