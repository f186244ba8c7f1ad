# Installs a Windows feature the prerequisites need on this node (offered fix, with the operator's consent).
param(
    [ValidateSet('Failover-Clustering', 'RSAT-AD-PowerShell')][string]$FeatureName = 'Failover-Clustering'
)

$ErrorActionPreference = 'Stop'
$before = Get-WindowsFeature -Name $FeatureName
$result = $null
if ([string]$before.InstallState -ne 'Installed') {
    Write-Information -MessageData ('Installing {0} with its management tools.' -f $FeatureName)
    $result = Install-WindowsFeature -Name $FeatureName -IncludeManagementTools
}
$after = Get-WindowsFeature -Name $FeatureName

[PSCustomObject]@{
    feature        = $FeatureName
    was_installed  = ([string]$before.InstallState -eq 'Installed')
    install_state  = [string]$after.InstallState
    success        = $(if ($result) { [bool]$result.Success } else { $true })
    restart_needed = $(if ($result) { [string]$result.RestartNeeded } else { 'No' })
} | ConvertTo-Json -Compress -Depth 8
