# Checks on this node that the Access Manager service runs and that the health-check page answers through the access point name.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9.-]{1,255}$')][string]$HostName,
    [ValidateRange(1, 65535)][int]$Port = 443,
    [bool]$ValidateCertificate = $true,
    [ValidateRange(1, 300)][int]$TimeoutSeconds = 30
)

$ErrorActionPreference = 'Stop'

$service = Get-Service -Name lithnetams -ErrorAction SilentlyContinue
$uri = if ($Port -eq 443) { 'https://{0}/health-check' -f $HostName } else { 'https://{0}:{1}/health-check' -f $HostName, $Port }
$request = @{ Uri = $uri; UseBasicParsing = $true; TimeoutSec = $TimeoutSeconds; MaximumRedirection = 0 }
$security = [System.Net.ServicePointManager]::SecurityProtocol
[System.Net.ServicePointManager]::SecurityProtocol = $security -bor [System.Net.SecurityProtocolType]::Tls12
$previousPolicy = [System.Net.ServicePointManager]::CertificatePolicy
if (-not $ValidateCertificate) {
    if ($PSVersionTable.PSVersion.Major -ge 6) {
        $request.SkipCertificateCheck = $true
    } else {
        if (-not ('AmsWizardAcceptAnyCertificate' -as [type])) {
            Add-Type -TypeDefinition @'
public class AmsWizardAcceptAnyCertificate : System.Net.ICertificatePolicy {
    public bool CheckValidationResult(System.Net.ServicePoint point, System.Security.Cryptography.X509Certificates.X509Certificate certificate, System.Net.WebRequest request, int problem) { return true; }
}
'@
        }
        [System.Net.ServicePointManager]::CertificatePolicy = New-Object AmsWizardAcceptAnyCertificate
    }
}

$statusCode = $null
$probeError = $null
$started = Get-Date
Write-Progress -Activity 'Health check' -Status $uri -PercentComplete 50
try {
    $response = Invoke-WebRequest @request
    $statusCode = [int]$response.StatusCode
} catch {
    $probeError = $_.Exception.Message
    if ($_.Exception.Response) {
        $statusCode = [int]$_.Exception.Response.StatusCode
    }
} finally {
    [System.Net.ServicePointManager]::CertificatePolicy = $previousPolicy
    [System.Net.ServicePointManager]::SecurityProtocol = $security
}

[PSCustomObject]@{
    computer       = $env:COMPUTERNAME
    service_status = if ($service) { [string]$service.Status } else { 'NotInstalled' }
    uri            = $uri
    status_code    = $statusCode
    error          = $probeError
    elapsed_ms     = [int]((Get-Date) - $started).TotalMilliseconds
} | ConvertTo-Json -Compress -Depth 8
