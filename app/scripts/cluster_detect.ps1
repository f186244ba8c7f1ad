# Reports whether this node belongs to a failover cluster: the cluster's name, address and member nodes with their states.
[CmdletBinding()]
param()

$ErrorActionPreference = 'Stop'

$result = [ordered]@{
    computer          = $env:COMPUTERNAME
    feature_installed = $false
    cluster_service   = $null
    exists            = $false
    name              = $null
    address           = $null
    nodes             = @()
}

$feature = Get-WindowsFeature -Name Failover-Clustering
$result.feature_installed = ($feature.InstallState -eq 'Installed')
$service = Get-Service -Name ClusSvc -ErrorAction SilentlyContinue
if ($service) {
    $result.cluster_service = [string]$service.Status
}

# The cluster service runs only on cluster members; when it runs, any error reading the cluster is real.
if ($result.feature_installed -and $service -and $service.Status -eq 'Running') {
    Import-Module FailoverClusters
    $cluster = Get-Cluster
    $result.exists = $true
    $result.name = $cluster.Name
    $result.nodes = @(Get-ClusterNode | ForEach-Object {
            [ordered]@{ name = $_.Name; state = [string]$_.State }
        })
    $coreGroup = Get-ClusterGroup | Where-Object { $_.GroupType -eq 'Cluster' } | Select-Object -First 1
    if ($coreGroup) {
        $ip = $coreGroup | Get-ClusterResource | Where-Object { $_.ResourceType.Name -eq 'IP Address' } |
            Select-Object -First 1
        if ($ip) {
            $result.address = [string]($ip | Get-ClusterParameter -Name Address).Value
        }
    }
}

[PSCustomObject]$result | ConvertTo-Json -Compress -Depth 8
