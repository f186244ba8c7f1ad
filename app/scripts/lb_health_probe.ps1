# Requests Access Manager's health-check pages over HTTPS at one name (this node's own name, or the balancer's) and reports each status code and the thumbprint of the certificate that answered.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9.:-]{1,255}$')][string]$HostName,
    [ValidateRange(1, 65535)][int]$Port = 443,
    [ValidatePattern('^/[A-Za-z0-9./-]{0,200}$')][string[]]$Paths = @('/health-check'),
    [bool]$ValidateCertificate = $false,
    [ValidateRange(1, 300)][int]$TimeoutSeconds = 30
)

$ErrorActionPreference = 'Stop'

$security = [System.Net.ServicePointManager]::SecurityProtocol
[System.Net.ServicePointManager]::SecurityProtocol = $security -bor [System.Net.SecurityProtocolType]::Tls12
$previousPolicy = [System.Net.ServicePointManager]::CertificatePolicy
if (-not $ValidateCertificate) {
    # The certificate names the farm (the balancer's name), not each node: a node's own name does not match it.
    # Windows PowerShell 5.1 has no -SkipCertificateCheck: a certificate policy accepts any certificate instead.
    if (-not ('AmsWizardAcceptAnyCertificate' -as [type])) {
        Add-Type -TypeDefinition @'
public class AmsWizardAcceptAnyCertificate : System.Net.ICertificatePolicy {
    public bool CheckValidationResult(System.Net.ServicePoint point, System.Security.Cryptography.X509Certificates.X509Certificate certificate, System.Net.WebRequest request, int problem) { return true; }
}
'@
    }
    [System.Net.ServicePointManager]::CertificatePolicy = New-Object AmsWizardAcceptAnyCertificate
}

$service = Get-Service -Name lithnetams -ErrorAction SilentlyContinue
$answers = @()
try {
    $index = 0
    foreach ($path in $Paths) {
        $index++
        $uri = if ($Port -eq 443) { 'https://{0}{1}' -f $HostName, $path } else { 'https://{0}:{1}{2}' -f $HostName, $Port, $path }
        Write-Progress -Activity 'Health check' -Status $uri -PercentComplete ([int](100 * $index / ($Paths.Count + 1)))
        $request = @{ Uri = $uri; UseBasicParsing = $true; TimeoutSec = $TimeoutSeconds; MaximumRedirection = 0; DisableKeepAlive = $true }
        $answer = [ordered]@{ path = $path; uri = $uri; status_code = $null; error = $null; thumbprint = $null; elapsed_ms = $null }
        $started = Get-Date
        try {
            $response = Invoke-WebRequest @request
            $answer.status_code = [int]$response.StatusCode
        } catch {
            $answer.error = $_.Exception.Message
            if ($_.Exception.Response) {
                $answer.status_code = [int]$_.Exception.Response.StatusCode
            }
        }
        $answer.elapsed_ms = [int]((Get-Date) - $started).TotalMilliseconds
        $point = [System.Net.ServicePointManager]::FindServicePoint([uri]$uri)
        if ($point -and $point.Certificate) {
            $answer.thumbprint = [string]$point.Certificate.GetCertHashString()
        }
        $answers += [PSCustomObject]$answer
    }
} finally {
    [System.Net.ServicePointManager]::CertificatePolicy = $previousPolicy
    [System.Net.ServicePointManager]::SecurityProtocol = $security
}

[PSCustomObject]@{
    computer       = $env:COMPUTERNAME
    host_name      = $HostName
    service_status = if ($service) { [string]$service.Status } else { 'NotInstalled' }
    answers        = @($answers)
} | ConvertTo-Json -Compress -Depth 8
