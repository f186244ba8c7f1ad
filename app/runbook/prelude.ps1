function Write-AmswStep {
    param([Parameter(Mandatory)][int]$Number, [Parameter(Mandatory)][string]$Title)
    Write-Host ''
    Write-Host ('==== Step {0}: {1} ====' -f $Number, $Title)
}

function Get-AmswSessionArguments {
    param([Parameter(Mandatory)][string]$Node)
    $target = $AmswNodes[$Node]
    if ($null -eq $target) {
        throw ("Unknown node '{0}'." -f $Node)
    }
    $methods = @{ negotiate = 'Negotiate'; kerberos = 'Kerberos'; ntlm = 'Negotiate'; credssp = 'Credssp'; basic = 'Basic' }
    $arguments = @{
        ComputerName   = $target.Host
        Port           = $target.Port
        Credential     = $AmswCredential
        Authentication = $methods[$target.Auth]
        ErrorAction    = 'Stop'
    }
    if ($target.Transport -eq 'https') {
        $arguments.UseSSL = $true
    }
    if (-not $target.ValidateCertificate) {
        $arguments.SessionOption = New-PSSessionOption -SkipCACheck -SkipCNCheck -SkipRevocationCheck
    }
    return $arguments
}

function Get-AmswScriptText {
    # The text of a vetted script defined in this file, for task_run to run in a scheduled task.
    param([Parameter(Mandatory)][string]$Script)
    return (Get-Command -Name ('Invoke-Amsw_' + $Script) -CommandType Function).ScriptBlock.ToString()
}

function Invoke-AmswAction {
    param(
        [Parameter(Mandatory)][string]$Node,
        [Parameter(Mandatory)][string]$Script,
        [Parameter(Mandatory)][string]$Label,
        [hashtable]$Parameters = @{}
    )
    Write-Host ('  [{0}] {1}' -f $Node, $Label)
    $function = Get-Command -Name ('Invoke-Amsw_' + $Script) -CommandType Function
    $body = $function.ScriptBlock.ToString()
    $arguments = Get-AmswSessionArguments -Node $Node
    $output = Invoke-Command @arguments -ArgumentList $body, $Parameters -ScriptBlock {
        param($Body, $Values)
        & ([scriptblock]::Create($Body)) @Values
    }
    $json = @($output | Where-Object { $_ -is [string] }) | Select-Object -Last 1
    if (-not $json) {
        throw ('{0} on {1} returned no JSON result.' -f $Script, $Node)
    }
    Write-Host ('  [{0}] {1} -> {2}' -f $Node, $Script, $json)
    return ($json | ConvertFrom-Json)
}

function Invoke-AmswPhase {
    param([Parameter(Mandatory)][string]$Title, [Parameter(Mandatory)][object[]]$Actions)
    Write-Host ''
    Write-Host ('-- {0}' -f $Title)
    $results = [ordered]@{}
    foreach ($action in $Actions) {
        $results[$action.Node] = Invoke-AmswAction @action
    }
    return $results
}

function Confirm-AmswChange {
    param([Parameter(Mandatory)][string]$Title)
    if ($Force) {
        return $true
    }
    $answer = Read-Host -Prompt ('Next: {0} (changes the nodes). Type yes to run it, anything else to skip' -f $Title)
    return ($answer -eq 'yes')
}
