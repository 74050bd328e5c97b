# The bookstore app on an autoscaling group behind an application load balancer, with
# envkit's proxy-check and db-backup on every instance.
#   cp terraform.tfvars.example terraform.tfvars && $EDITOR terraform.tfvars
#   terraform init && terraform apply
provider "aws" {
  region = var.region
}

module "bookstore_asg" {
  source = "../../modules/bookstore-asg"

  name               = "bookstore"
  ami_id             = var.ami_id
  vpc_id             = var.vpc_id
  subnet_ids         = var.subnet_ids
  security_group_ids = var.security_group_ids
  envkit_deb_url     = var.envkit_deb_url
  database_host      = var.database_host
  backup_password    = var.backup_password
  min_size           = 2
  max_size           = 6
  desired_capacity   = 2
  tags               = { Environment = "bookstore" }
}

resource "aws_lb" "bookstore" {
  name               = "bookstore"
  load_balancer_type = "application"
  subnets            = var.subnet_ids
  security_groups    = var.security_group_ids
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.bookstore.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = module.bookstore_asg.target_group_arn
  }
}
