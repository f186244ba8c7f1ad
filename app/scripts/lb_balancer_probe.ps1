# Sends several requests for the health-check page to the load balancer's address, each on a new connection, and reports every status code and the thumbprint of the certificate that answered (the balancer must pass TLS through to the nodes).
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9.:-]{1,255}$')][string]$Address,
    [ValidateRange(1, 65535)][int]$Port = 443,
    [ValidateRange(1, 50)][int]$Count = 6,
    [bool]$ValidateCertificate = $true,
    [ValidateRange(1, 300)][int]$TimeoutSeconds = 30
)

$ErrorActionPreference = 'Stop'

$security = [System.Net.ServicePointManager]::SecurityProtocol
[System.Net.ServicePointManager]::SecurityProtocol = $security -bor [System.Net.SecurityProtocolType]::Tls12
$previousPolicy = [System.Net.ServicePointManager]::CertificatePolicy
if (-not $ValidateCertificate) {
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

$uri = if ($Port -eq 443) { 'https://{0}/health-check' -f $Address } else { 'https://{0}:{1}/health-check' -f $Address, $Port }
$requests = @()
try {
    for ($i = 1; $i -le $Count; $i++) {
        Write-Progress -Activity 'Requests through the load balancer' -Status ('{0} of {1}' -f $i, $Count) -PercentComplete ([int](100 * $i / $Count))
        $request = @{ Uri = $uri; UseBasicParsing = $true; TimeoutSec = $TimeoutSeconds; MaximumRedirection = 0; DisableKeepAlive = $true }
        $answer = [ordered]@{ status_code = $null; error = $null; thumbprint = $null }
        try {
            $response = Invoke-WebRequest @request
            $answer.status_code = [int]$response.StatusCode
        } catch {
            $answer.error = $_.Exception.Message
            if ($_.Exception.Response) {
                $answer.status_code = [int]$_.Exception.Response.StatusCode
            }
        }
        $point = [System.Net.ServicePointManager]::FindServicePoint([uri]$uri)
        if ($point -and $point.Certificate) {
            $answer.thumbprint = [string]$point.Certificate.GetCertHashString()
        }
        $requests += [PSCustomObject]$answer
    }
} finally {
    [System.Net.ServicePointManager]::CertificatePolicy = $previousPolicy
    [System.Net.ServicePointManager]::SecurityProtocol = $security
}

[PSCustomObject]@{
    computer = $env:COMPUTERNAME
    address  = $Address
    uri      = $uri
    requests = @($requests)
} | ConvertTo-Json -Compress -Depth 8
