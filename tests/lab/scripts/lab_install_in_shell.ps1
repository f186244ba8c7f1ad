# What ams_install_start.ps1 must not do: start the installer inside the WinRM shell, whose job object ends it when the
# runspace pool closes (rule shell_job). Used only by tests/lab/test_windows_rules.py.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$InstallerPath,
    [Parameter(Mandatory)][string]$LogPath,
    [Parameter(Mandatory)][hashtable]$Properties
)

$ErrorActionPreference = 'Stop'
$propertyText = @($Properties.Keys | Sort-Object | ForEach-Object { '{0}="{1}"' -f $_, $Properties[$_] }) -join ' '
$process = Start-Process -FilePath $InstallerPath -ArgumentList ('/exenoui /qn /norestart /l*v "{0}" {1}' -f $LogPath, $propertyText) -PassThru
[PSCustomObject]@{
    process_id      = [int]$process.Id
    already_running = $false
    log_path        = $LogPath
    installer_path  = $InstallerPath
} | ConvertTo-Json -Compress
