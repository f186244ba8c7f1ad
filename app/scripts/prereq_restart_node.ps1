# Restarts this node to finish a pending change; the restart is delayed so this result can be returned.
param(
    [ValidateRange(5, 600)][int]$DelaySeconds = 10
)

$ErrorActionPreference = 'Stop'
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$bootTime = $os.LastBootUpTime.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')
# Restart-Computer -Force would end this WinRM session before the result reaches the wizard;
# shutdown.exe with a delay returns at once and the wizard then waits for a new boot time.
$shutdown = Join-Path -Path $env:SystemRoot -ChildPath 'System32\shutdown.exe'
& $shutdown /r /t $DelaySeconds /d p:2:17 /c 'Restart requested by the AMS cluster wizard to finish a pending change.'
if ($LASTEXITCODE -ne 0) {
    throw ('shutdown.exe refused the restart (exit code {0}).' -f $LASTEXITCODE)
}
Write-Information -MessageData ('{0} will restart in {1} seconds.' -f $env:COMPUTERNAME, $DelaySeconds)

[PSCustomObject]@{
    computer_name  = $env:COMPUTERNAME
    boot_time      = $bootTime
    restart_in     = $DelaySeconds
    restart_queued = $true
} | ConvertTo-Json -Compress -Depth 8
