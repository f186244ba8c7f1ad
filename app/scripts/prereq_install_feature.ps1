# Installs the Failover Clustering feature and its management tools on this node (offered fix).
param(
    [string]$FeatureName = 'Failover-Clustering'
)

$ErrorActionPreference = 'Stop'
if ($FeatureName -ne 'Failover-Clustering') {
    throw 'Only the Failover-Clustering feature is installed by this script.'
}
$before = Get-WindowsFeature -Name $FeatureName
$result = $null
if ($before.InstallState -ne 'Installed') {
    Write-Information -MessageData 'Installing Failover-Clustering with its management tools.'
    $result = Install-WindowsFeature -Name $FeatureName -IncludeManagementTools
}
$after = Get-WindowsFeature -Name $FeatureName

[PSCustomObject]@{
    feature        = $FeatureName
    was_installed  = ($before.InstallState -eq 'Installed')
    install_state  = [string]$after.InstallState
    success        = $(if ($result) { [bool]$result.Success } else { $true })
    restart_needed = $(if ($result) { [string]$result.RestartNeeded } else { 'No' })
} | ConvertTo-Json -Compress -Depth 8
