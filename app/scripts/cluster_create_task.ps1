# Creates the failover cluster by running New-Cluster in a one-shot scheduled task on this node (no double hop), then removes the task.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$Name,
    [Parameter(Mandatory)][ValidateCount(1, 64)][string[]]$Node,
    [Parameter(Mandatory)][ipaddress]$StaticAddress,
    [Parameter(Mandatory)][string]$TaskUser,
    [Parameter(Mandatory)][object]$TaskPassword,
    [ValidateRange(60, 3600)][int]$TimeoutSeconds = 900
)

$ErrorActionPreference = 'Stop'

# Fixed text run by the task: it reads its inputs from input.json and writes result.json next to it.
$taskScript = @'
param([Parameter(Mandatory)][string]$WorkDir)
$ErrorActionPreference = 'Stop'
$inputs = Get-Content -LiteralPath (Join-Path $WorkDir 'input.json') -Raw | ConvertFrom-Json
$outcome = [ordered]@{ ok = $false; error = $null; name = $null; nodes = @(); warnings = @() }
try {
    Import-Module FailoverClusters
    $createWarnings = @()
    $cluster = New-Cluster -Name $inputs.Name -Node @($inputs.Node) -StaticAddress $inputs.StaticAddress -NoStorage -WarningVariable createWarnings
    $outcome.ok = $true
    $outcome.name = [string]$cluster.Name
    $outcome.nodes = @(Get-ClusterNode -Cluster $cluster.Name | ForEach-Object { [ordered]@{ name = $_.Name; state = [string]$_.State } })
    $outcome.warnings = @($createWarnings | ForEach-Object { [string]$_.Message })
} catch {
    $outcome.error = $_.Exception.Message
}
$outcome | ConvertTo-Json -Depth 5 | Set-Content -LiteralPath (Join-Path $WorkDir 'result.json') -Encoding UTF8
'@

$password = if ($TaskPassword -is [securestring]) {
    [System.Net.NetworkCredential]::new('', $TaskPassword).Password
} else {
    [string]$TaskPassword
}

# A private folder (SYSTEM and Administrators only) for the task's script, inputs and result.
$workDir = Join-Path $env:SystemRoot ('Temp\AmsClusterWizard-' + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $workDir | Out-Null
$acl = New-Object System.Security.AccessControl.DirectorySecurity
$acl.SetAccessRuleProtection($true, $false)
foreach ($sid in 'S-1-5-18', 'S-1-5-32-544') {
    $identity = New-Object System.Security.Principal.SecurityIdentifier($sid)
    $rule = New-Object System.Security.AccessControl.FileSystemAccessRule(
        $identity, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow')
    $acl.AddAccessRule($rule)
}
Set-Acl -LiteralPath $workDir -AclObject $acl

$scriptPath = Join-Path $workDir 'new-cluster.ps1'
$resultPath = Join-Path $workDir 'result.json'
Set-Content -LiteralPath $scriptPath -Value $taskScript -Encoding UTF8
[ordered]@{ Name = $Name; Node = @($Node); StaticAddress = $StaticAddress.IPAddressToString } |
    ConvertTo-Json | Set-Content -LiteralPath (Join-Path $workDir 'input.json') -Encoding UTF8

$taskName = 'AMS Cluster Wizard New-Cluster ' + (Split-Path -Path $workDir -Leaf)
$arguments = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{0}" -WorkDir "{1}"' -f $scriptPath, $workDir
$action = New-ScheduledTaskAction -Execute (Join-Path $PSHOME 'powershell.exe') -Argument $arguments
$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Seconds $TimeoutSeconds)
$outcome = $null
$started = Get-Date
try {
    Register-ScheduledTask -TaskName $taskName -Action $action -Settings $settings -User $TaskUser `
        -Password $password -RunLevel Highest | Out-Null
    Start-ScheduledTask -TaskName $taskName
    do {
        Start-Sleep -Seconds 3
        $elapsed = ((Get-Date) - $started).TotalSeconds
        $state = [string](Get-ScheduledTask -TaskName $taskName).State
        $percent = [int][Math]::Min(95, 100 * $elapsed / $TimeoutSeconds)
        Write-Progress -Activity 'New-Cluster (scheduled task)' -Status ('{0}, {1:N0} s' -f $state, $elapsed) -PercentComplete $percent
    } while ($state -in 'Running', 'Queued' -and $elapsed -lt $TimeoutSeconds)
    if ($state -in 'Running', 'Queued') {
        Stop-ScheduledTask -TaskName $taskName
        throw ('New-Cluster did not finish within {0} seconds; the cluster may be partly created. Check Failover Cluster Manager, then retry: the wizard detects an existing cluster.' -f $TimeoutSeconds)
    }
    if (-not (Test-Path -LiteralPath $resultPath)) {
        $info = Get-ScheduledTaskInfo -TaskName $taskName
        throw ('The scheduled task ended without a result (last result 0x{0:X8}). Check that {1} may log on as a batch job on this node.' -f $info.LastTaskResult, $TaskUser)
    }
    $outcome = Get-Content -LiteralPath $resultPath -Raw | ConvertFrom-Json
} finally {
    Unregister-ScheduledTask -TaskName $taskName -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -LiteralPath $workDir -Recurse -Force -ErrorAction SilentlyContinue
}

if (-not $outcome.ok) {
    throw ('New-Cluster failed in the scheduled task: {0}' -f $outcome.error)
}

[PSCustomObject]@{
    method          = 'scheduled_task'
    name            = $outcome.name
    nodes           = @($outcome.nodes)
    warnings        = @($outcome.warnings)
    elapsed_seconds = [int]((Get-Date) - $started).TotalSeconds
} | ConvertTo-Json -Compress -Depth 8
