# Reads the cluster's quorum configuration: quorum type, witness kind and where the witness lives.
[CmdletBinding()]
param()

$ErrorActionPreference = 'Stop'

Import-Module FailoverClusters
$quorum = Get-ClusterQuorum
$witness = $quorum.QuorumResource
$result = [ordered]@{
    quorum_type      = [string]$quorum.QuorumType
    witness_kind     = $null
    witness_resource = $null
    witness_state    = $null
    share_path       = $null
    cloud_account    = $null
    cloud_endpoint   = $null
    node_count       = @(Get-ClusterNode).Count
}
if ($witness) {
    $result.witness_kind = [string]$witness.ResourceType.DisplayName
    $result.witness_resource = [string]$witness.Name
    $result.witness_state = [string]$witness.State
    switch ($result.witness_kind) {
        'File Share Quorum Witness' {
            $result.share_path = [string]($witness | Get-ClusterParameter -Name SharePath).Value
        }
        'Cloud Witness' {
            $result.cloud_account = [string]($witness | Get-ClusterParameter -Name AccountName).Value
            $result.cloud_endpoint = [string]($witness | Get-ClusterParameter -Name EndpointInfo).Value
        }
    }
}

[PSCustomObject]$result | ConvertTo-Json -Compress -Depth 8
