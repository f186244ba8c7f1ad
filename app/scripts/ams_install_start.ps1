# Starts the Access Manager installer silently with a verbose log and returns at once with its process id (experimental).
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$InstallerPath,
    [Parameter(Mandatory)][string]$ServiceAccount,
    [Parameter(Mandatory)][string]$ConnectionString,
    [Parameter(Mandatory)][string]$LogPath
)

$ErrorActionPreference = 'Stop'

foreach ($value in $InstallerPath, $ServiceAccount, $ConnectionString, $LogPath) {
    if ($value.Contains('"')) {
        throw 'Installer arguments must not contain double quotes.'
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

# UNCONFIRMED property names: Lithnet documents no silent install. USER_NAME is the v1 MSI
# property; CONNECTION_STRING is a guess. The wizard's verification shows whether they were honoured.
$properties = @(
    ('USER_NAME="{0}"' -f $ServiceAccount),
    ('CONNECTION_STRING="{0}"' -f $ConnectionString)
)
if ($InstallerPath.EndsWith('.msi', [StringComparison]::OrdinalIgnoreCase)) {
    $file = Join-Path $env:SystemRoot 'System32\msiexec.exe'
    $arguments = @('/i', ('"{0}"' -f $InstallerPath), '/qn', '/norestart', '/l*v', ('"{0}"' -f $LogPath)) + $properties
} else {
    $file = $InstallerPath
    $arguments = @('/exenoui', '/qn', '/norestart', '/l*v', ('"{0}"' -f $LogPath)) + $properties
}
Write-Progress -Activity 'Access Manager installer' -Status 'Starting' -PercentComplete 5
$process = Start-Process -FilePath $file -ArgumentList $arguments -PassThru -WindowStyle Hidden

[PSCustomObject]@{
    process_id      = [int]$process.Id
    already_running = $false
    log_path        = $LogPath
    installer_path  = $InstallerPath
} | ConvertTo-Json -Compress -Depth 8
