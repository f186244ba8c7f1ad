# Starts the Access Manager installer silently, outside the WinRM shell, and returns at once with its process id (experimental).
# A process started in the shell (Start-Process, & setup.exe) dies when the shell closes, so the installer is created by
# Win32_Process Create (it belongs to the WMI provider host, not to this session) and followed by polling its log.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$InstallerPath,
    [Parameter(Mandatory)][string]$LogPath,
    [Parameter(Mandatory)][hashtable]$Properties
)

$ErrorActionPreference = 'Stop'

foreach ($value in @($InstallerPath, $LogPath) + @($Properties.Values)) {
    if ([string]$value -match '["\r\n]') {
        throw 'Installer arguments must not contain double quotes or line breaks.'
    }
}
foreach ($name in $Properties.Keys) {
    if ([string]$name -cnotmatch '^[A-Z][A-Z0-9_]{0,63}$') {
        throw ("'{0}' is not a public MSI property name." -f $name)
    }
}
if (-not (Test-Path -LiteralPath $InstallerPath -PathType Leaf)) {
    throw ("The installer was not found at '{0}'. It must be copied to the node before this step runs." -f $InstallerPath)
}

# A retry must not start a second installer: report the one already writing this log.
$running = Get-CimInstance -ClassName Win32_Process |
    Where-Object { $_.CommandLine -and $_.CommandLine.Contains($LogPath) } | Select-Object -First 1
if ($running) {
    [PSCustomObject]@{
        process_id      = [int]$running.ProcessId
        already_running = $true
        log_path        = $LogPath
        installer_path  = $InstallerPath
    } | ConvertTo-Json -Compress -Depth 8
    return
}

$propertyText = @($Properties.Keys | Sort-Object | ForEach-Object { '{0}="{1}"' -f $_, $Properties[$_] }) -join ' '
if ($InstallerPath.EndsWith('.msi', [StringComparison]::OrdinalIgnoreCase)) {
    $commandLine = '"{0}" /i "{1}" /qn /norestart /l*v "{2}" {3}' -f (Join-Path $env:SystemRoot 'System32\msiexec.exe'), $InstallerPath, $LogPath, $propertyText
} else {
    $commandLine = '"{0}" /exenoui /qn /norestart /l*v "{1}" {2}' -f $InstallerPath, $LogPath, $propertyText
}
Write-Progress -Activity 'Access Manager installer' -Status 'Starting' -PercentComplete 5
$created = Invoke-CimMethod -ClassName Win32_Process -MethodName Create -Arguments @{ CommandLine = $commandLine }
if ($created.ReturnValue -ne 0) {
    throw ('Win32_Process Create could not start the installer (return value {0}).' -f $created.ReturnValue)
}

[PSCustomObject]@{
    process_id      = [int]$created.ProcessId
    already_running = $false
    log_path        = $LogPath
    installer_path  = $InstallerPath
} | ConvertTo-Json -Compress -Depth 8
