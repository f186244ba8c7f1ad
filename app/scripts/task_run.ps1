# Runs one vetted script in a one-shot scheduled task on this node. A task logs on with a password, so the script
# holds network credentials a WinRM session lacks (the second hop): Active Directory, SQL Server, the other nodes.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[a-z0-9_]{1,64}$')][string]$ScriptName,
    [Parameter(Mandatory)][string]$ScriptText,
    [hashtable]$Parameters = @{},
    [object]$TaskUser = $null,
    [object]$TaskPassword = $null,
    [string]$ServiceAccount = '',
    [ValidateRange(30, 7200)][int]$TimeoutSeconds = 900
)

$ErrorActionPreference = 'Stop'

# Fixed text the task runs: it reads the parameters, runs script.ps1 and writes result.json next to them.
$bootstrap = @'
param([Parameter(Mandatory)][string]$WorkDir)
$ErrorActionPreference = 'Stop'
$result = [ordered]@{ ok = $false; output = @(); warnings = @(); error = $null; identity = $null }
try {
    $result.identity = [string][System.Security.Principal.WindowsIdentity]::GetCurrent().Name
    $arguments = Import-Clixml -LiteralPath (Join-Path $WorkDir 'parameters.xml')
    $items = & (Join-Path $WorkDir 'script.ps1') @arguments 3>&1
    foreach ($item in @($items)) {
        if ($item -is [System.Management.Automation.WarningRecord]) {
            $result.warnings += [string]$item.Message
        } else {
            $result.output += [string]$item
        }
    }
    $result.ok = $true
} catch {
    $result.error = [string]$_.Exception.Message
}
$result | ConvertTo-Json -Depth 4 | Set-Content -LiteralPath (Join-Path $WorkDir 'result.json') -Encoding UTF8
'@

if ($ServiceAccount) {
    $runAs = $ServiceAccount
    $principal = New-ScheduledTaskPrincipal -UserId $ServiceAccount -LogonType Password -RunLevel Highest
} elseif ($TaskUser -and $TaskPassword) {
    # Both arrive as SecureStrings from the wizard's vault; a [string] parameter would turn them into
    # the text 'System.Security.SecureString'.
    $runAs, $password = foreach ($value in @($TaskUser, $TaskPassword)) {
        if ($value -is [securestring]) { [System.Net.NetworkCredential]::new('', $value).Password } else { [string]$value }
    }
} else {
    throw 'The scheduled task needs the operator''s user name and password, or a service account to run as.'
}

# A private folder: SYSTEM, Administrators and the account the task runs as, nobody else.
$workDir = Join-Path $env:SystemRoot ('Temp\AmsClusterWizard-' + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $workDir | Out-Null
$acl = New-Object System.Security.AccessControl.DirectorySecurity
$acl.SetAccessRuleProtection($true, $false)
$identities = @(
    (New-Object System.Security.Principal.SecurityIdentifier('S-1-5-18')),
    (New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-544')),
    (New-Object System.Security.Principal.NTAccount($runAs))
)
foreach ($identity in $identities) {
    $rule = New-Object System.Security.AccessControl.FileSystemAccessRule(
        $identity, 'Modify', 'ContainerInherit,ObjectInherit', 'None', 'Allow')
    $acl.AddAccessRule($rule)
}
Set-Acl -LiteralPath $workDir -AclObject $acl

$bootstrapPath = Join-Path $workDir 'bootstrap.ps1'
$resultPath = Join-Path $workDir 'result.json'
Set-Content -LiteralPath $bootstrapPath -Value $bootstrap -Encoding UTF8
Set-Content -LiteralPath (Join-Path $workDir 'script.ps1') -Value $ScriptText -Encoding UTF8
$Parameters | Export-Clixml -LiteralPath (Join-Path $workDir 'parameters.xml')

$taskName = 'AMS Cluster Wizard ' + $ScriptName + ' ' + (Split-Path -Path $workDir -Leaf)
$arguments = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{0}" -WorkDir "{1}"' -f $bootstrapPath, $workDir
$action = New-ScheduledTaskAction -Execute (Join-Path $PSHOME 'powershell.exe') -Argument $arguments
$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Seconds $TimeoutSeconds)
$started = Get-Date
$outcome = $null
try {
    try {
        if ($ServiceAccount) {
            Register-ScheduledTask -TaskName $taskName -Action $action -Settings $settings -Principal $principal | Out-Null
        } else {
            Register-ScheduledTask -TaskName $taskName -Action $action -Settings $settings -User $runAs `
                -Password $password -RunLevel Highest | Out-Null
        }
    } catch {
        $text = [string]$_.Exception.Message + ' ' + [string]$_.FullyQualifiedErrorId
        if ($text -match '0x80070520') {
            throw ('This node does not allow a scheduled task to store a password (policy "Network access: Do not allow storage of passwords and credentials for network authentication", 0x80070520). Use CredSSP for this deployment, or ask for the policy to be relaxed on {0}.' -f $env:COMPUTERNAME)
        }
        if ($text -match '0x8007052E') {
            throw ('The scheduled task could not log on as {0}: the user name or password is incorrect (0x8007052E).' -f $runAs)
        }
        throw
    }
    Start-ScheduledTask -TaskName $taskName
    do {
        Start-Sleep -Seconds 2
        $elapsed = ((Get-Date) - $started).TotalSeconds
        $state = [string](Get-ScheduledTask -TaskName $taskName).State
        $percent = [int][Math]::Min(95, 100 * $elapsed / $TimeoutSeconds)
        Write-Progress -Activity ('{0} (scheduled task as {1})' -f $ScriptName, $runAs) -Status ('{0}, {1:N0} s' -f $state, $elapsed) -PercentComplete $percent
    } while ($state -in 'Running', 'Queued' -and $elapsed -lt $TimeoutSeconds)
    if ($state -in 'Running', 'Queued') {
        Stop-ScheduledTask -TaskName $taskName
        throw ('{0} did not finish within {1} seconds in the scheduled task and was stopped; its work may be partly done. Look at the node, then retry: the step detects what is already there.' -f $ScriptName, $TimeoutSeconds)
    }
    if (-not (Test-Path -LiteralPath $resultPath)) {
        $last = [uint32](Get-ScheduledTaskInfo -TaskName $taskName).LastTaskResult
        if ($last -eq 0x80070569) {
            throw ('{0} may not "Log on as a batch job" on {1} (0x80070569), so the scheduled task could not start. Grant the right (Local Security Policy, User Rights Assignment) or use CredSSP.' -f $runAs, $env:COMPUTERNAME)
        }
        if ($last -eq 0x8007052E) {
            throw ('The scheduled task could not log on as {0} on {1} (0x8007052E): wrong password, or a service account whose password this node may not retrieve.' -f $runAs, $env:COMPUTERNAME)
        }
        throw ('The scheduled task ended without a result (last result 0x{0:X8}).' -f $last)
    }
    $outcome = Get-Content -LiteralPath $resultPath -Raw | ConvertFrom-Json
} finally {
    Unregister-ScheduledTask -TaskName $taskName -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -LiteralPath $workDir -Recurse -Force -ErrorAction SilentlyContinue
}

foreach ($warning in @($outcome.warnings)) {
    Write-Warning $warning
}
if (-not $outcome.ok) {
    throw ('{0} failed in the scheduled task (running as {1}): {2}' -f $ScriptName, $outcome.identity, $outcome.error)
}
foreach ($line in @($outcome.output)) {
    Write-Output $line
}
