variable "cluster_name" {
  description = "The EKS cluster's name, for `aws eks get-token`."
  type        = string
}

variable "cluster_endpoint" {
  description = "The EKS cluster's API server endpoint (the EKS module's cluster_endpoint output)."
  type        = string
}

variable "cluster_ca_certificate" {
  description = "The cluster's CA certificate, base64-encoded (certificate_authority_data)."
  type        = string
}

variable "chart_repository" {
  description = "An OCI registry holding the chart (oci://<registry>/<path>); null: the chart of this checkout."
  type        = string
  default     = null
}

variable "chart_version" {
  description = "The chart's version in chart_repository; ignored for the chart of this checkout."
  type        = string
  default     = "0.1.0"
}

variable "image_registry" {
  description = "Registry that replaces every image's registry (a pull-through cache, say); empty: the images' own."
  type        = string
  default     = ""
}
